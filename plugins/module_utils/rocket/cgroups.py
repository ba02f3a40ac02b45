"""Control groups of a pod: one interface over cgroup v1 (legacy or hybrid) and cgroup v2.

Every hierarchy the pod uses holds the same tree:

    <mount point>/<base>/<pod-uuid>/<app-name>

`base` is `rocket` at the hierarchy's root, or, on the unified (v2) hierarchy, a delegated path the
caller gives (`parent`, e.g. the systemd unit the supervisor runs in, with Delegate=yes). Processes live
only in the app leaves, as v2's "no internal processes" rule requires. The layout is read from
/proc/self/mountinfo and /proc/filesystems, never assumed:

    v2      only a cgroup2 mount: everything goes through it
    hybrid  v1 controller hierarchies plus a cgroup2 mount (often without controllers): a limit uses the
            unified hierarchy when it offers the controller, else the v1 hierarchy that has it; the
            unified tree still tracks the pod's processes and gives cgroup.kill
    v1      v1 controller hierarchies only
    none    nothing mounted: every limit is refused

A limit that no hierarchy can enforce raises RocketError with `isolator` in its context; callers turn
it into the "isolator not enforced" warning. Control files are written in place with one write(2):
cgroupfs has no rename, so fileio.atomic_write (the engine's usual way to write) cannot apply here.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

from .errors import RocketError
from .isolators import CPU_SHARES, OOM_SCORE_ADJ, RESOURCE_CPU, RESOURCE_MEMORY
from .mountinfo import parse_mountinfo
from .names import LOWER_HEX, is_ac_name
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Iterator, List, Optional, Tuple

MOUNTINFO = Path("/proc/self/mountinfo")
FILESYSTEMS = Path("/proc/filesystems")
PROC = Path("/proc")
BASE = "rocket"

# Controllers a pod gets its own cgroup in on v1, and those it enables on v2.
V1_CONTROLLERS = frozenset({"memory", "cpu", "cpuacct", "pids", "devices", "blkio", "freezer", "cpuset"})
V2_CONTROLLERS = ("cpu", "memory", "pids")
_KNOWN_V1 = V1_CONTROLLERS | {"net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc", "debug"}

CPU_PERIOD_US = 100_000
CPU_MIN_QUOTA_US = 1_000  # the kernel refuses a quota under 1 ms
# systemd's conversion of cpu.shares to cpu.weight (cgroup_cpu_shares_to_weight).
_SHARES_DEFAULT, _WEIGHT_DEFAULT, _WEIGHT_MIN, _WEIGHT_MAX = 1024, 100, 1, 10_000


class Hierarchy(Record):
    """One mounted cgroup hierarchy: v1 with its bound controllers, or the v2 unified one."""

    FIELDS = ("version", "mount_point", "controllers", "root")
    HASHABLE = True

    def __init__(self, version: int, mount_point: Path, controllers: frozenset[str], root: str = "/") -> None:
        self.version = version
        self.mount_point = mount_point
        self.controllers = controllers  # v1: bound controllers (and `name=...`); v2: empty, read cgroup.controllers
        self.root = root  # the mount's root inside the hierarchy (not "/" in a bind-mounted subtree)


class CgroupLayout(Record):
    """The cgroup hierarchies of this host as mounted for this process."""

    FIELDS = ("mode", "v1", "unified", "kernel_v1", "kernel_v2")
    HASHABLE = True

    def __init__(
        self, mode: str, v1: Tuple[Hierarchy, ...], unified: Optional[Hierarchy], kernel_v1: bool, kernel_v2: bool
    ) -> None:
        self.mode = mode  # "v2", "hybrid", "v1" or "none"
        self.v1 = v1
        self.unified = unified
        self.kernel_v1 = kernel_v1  # "cgroup" in /proc/filesystems
        self.kernel_v2 = kernel_v2  # "cgroup2" in /proc/filesystems

    def v1_hierarchy(self, controller: str) -> Optional[Hierarchy]:
        """The v1 hierarchy `controller` is bound to, if mounted."""
        return next((h for h in self.v1 if controller in h.controllers), None)


class CgroupStats(Record):
    """Usage of a pod or an app: bytes of memory now and at peak, CPU time in microseconds (None: unknown)."""

    FIELDS = ("memory_current", "memory_peak", "cpu_usage_usec")
    HASHABLE = True

    def __init__(
        self, memory_current: Optional[int], memory_peak: Optional[int], cpu_usage_usec: Optional[int]
    ) -> None:
        self.memory_current = memory_current
        self.memory_peak = memory_peak
        self.cpu_usage_usec = cpu_usage_usec


# --- Detection ---------------------------------------------------------------------------------------


def parse_layout(mountinfo: str, filesystems: str) -> CgroupLayout:
    """The layout described by the text of /proc/self/mountinfo and /proc/filesystems."""
    kernel = {line.split()[-1] for line in filesystems.splitlines() if line.strip()}
    v1: dict[frozenset[str], Hierarchy] = {}
    unified: Optional[Hierarchy] = None
    for mount in parse_mountinfo(mountinfo):
        root, mount_point = mount.root, Path(mount.mount_point)
        if mount.fstype == "cgroup2" and (unified is None or (unified.root != "/" and root == "/")):
            unified = Hierarchy(2, mount_point, frozenset(), root)
        elif mount.fstype == "cgroup":
            bound = frozenset(o for o in mount.super_options if o in _KNOWN_V1 or o.startswith("name="))
            seen = v1.get(bound)
            # The same hierarchy mounted twice: keep the first, unless a later one shows its whole tree.
            if seen is None or (seen.root != "/" and root == "/"):
                v1[bound] = Hierarchy(1, mount_point, bound, root)
    with_controllers = tuple(h for h in v1.values() if h.controllers & _KNOWN_V1)
    modes = {(True, True): "hybrid", (True, False): "v2", (False, True): "v1", (False, False): "none"}
    mode = modes[(unified is not None, bool(with_controllers))]
    return CgroupLayout(mode, with_controllers, unified, "cgroup" in kernel, "cgroup2" in kernel)


def detect(*, mountinfo: Path = MOUNTINFO, filesystems: Path = FILESYSTEMS) -> CgroupLayout:
    """Read this process's cgroup layout from /proc."""
    return parse_layout(mountinfo.read_text(), filesystems.read_text())


def unified_cgroup(pid: int | str = "self", *, proc: Path = PROC) -> Optional[str]:
    """The v2 cgroup path of a process (`0::/system.slice/x.service` -> that path), None without v2."""
    for line in (proc / str(pid) / "cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


SUPERVISOR_LEAF = "supervisor"


def delegated_parent(layout: CgroupLayout, *, under_systemd: bool, proc: Path = PROC) -> Optional[str]:
    """Where a supervisor started as a systemd unit (Delegate=yes) puts its pod: its own unit's cgroup.

    Only on a pure v2 host: the unit's cgroup is the delegated subtree. The supervisor first moves itself
    into a leaf `<unit>/supervisor`, since v2 lets a cgroup pass controllers on only when it holds no
    processes itself. None elsewhere (the pod goes under `rocket/` at the hierarchy's root, as before).
    """
    if not under_systemd or layout.mode != "v2" or layout.unified is None:
        return None
    own = unified_cgroup("self", proc=proc)
    if not own or own == "/":
        return None
    unit = layout.unified.mount_point / _relative(own)
    if unit.name == SUPERVISOR_LEAF:  # moved already (a restarted supervisor in the same unit)
        return str(Path(own).parent)
    leaf = unit / SUPERVISOR_LEAF
    try:
        os.mkdir(leaf)
    except FileExistsError:
        pass
    _write(leaf / "cgroup.procs", str(os.getpid()))
    return own


# --- Control files -----------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    return path.read_text().strip()


def _read_int(path: Path) -> Optional[int]:
    try:
        return int(_read(path))
    except (OSError, ValueError):
        return None


def _words(path: Path) -> set[str]:
    try:
        return set(_read(path).split())
    except FileNotFoundError:
        return set()


def cpu_quota_us(millicores: int) -> int:
    """CFS quota per CPU_PERIOD_US for a CPU limit in millicores (1000 = one core), at least 1 ms."""
    return max(CPU_MIN_QUOTA_US, millicores * CPU_PERIOD_US // 1000)


def cpu_weight(shares: int) -> int:
    """cpu.weight for v1 cpu.shares, converted as systemd does (1024 -> 100, clamped to 1..10000)."""
    return min(_WEIGHT_MAX, max(_WEIGHT_MIN, shares * _WEIGHT_DEFAULT // _SHARES_DEFAULT))


def set_oom_score_adj(pid: int, value: int, *, proc: Path = PROC) -> None:
    """Write /proc/<pid>/oom_score_adj (-1000..1000; lowering it needs CAP_SYS_RESOURCE)."""
    if not -1000 <= value <= 1000:
        raise RocketError(f"oom-score-adj {value} is outside -1000..1000", isolator=OOM_SCORE_ADJ, pid=pid)
    try:
        _write(proc / str(pid) / "oom_score_adj", str(value))
    except OSError as exc:
        raise RocketError(
            f"isolator {OOM_SCORE_ADJ} cannot be enforced on pid {pid}: {exc.strerror}",
            hint="the process may have exited, or lowering the score needs CAP_SYS_RESOURCE",
            isolator=OOM_SCORE_ADJ,
            pid=pid,
        ) from exc


# --- The pod's cgroups -------------------------------------------------------------------------------


def is_canonical_uuid(text: str) -> bool:
    """A pod's UUID as its folder is named (8-4-4-4-12 lower-case hex digits); anything else must never
    become a path in the cgroup trees."""
    groups = text.split("-")
    return [len(group) for group in groups] == [8, 4, 4, 4, 12] and all(LOWER_HEX.issuperset(g) for g in groups)


class PodCgroup:
    """The cgroups of one pod in every hierarchy it uses, with one sub-cgroup per app."""

    def __init__(self, layout: CgroupLayout, pod_uuid: str, *, parent: Optional[str] = None) -> None:
        if not is_canonical_uuid(pod_uuid):
            raise AssertionError(f"bug: pod cgroup for a non-UUID {pod_uuid!r}")
        self.layout = layout
        self.pod_uuid = pod_uuid
        self.parent = _relative(parent) if parent is not None else None
        used = [h for h in layout.v1 if h.controllers & V1_CONTROLLERS]
        if layout.unified is not None:
            used.append(layout.unified)
        self.hierarchies: Tuple[Hierarchy, ...] = tuple(used)

    def _base(self, hierarchy: Hierarchy) -> Path:
        if hierarchy.version == 2 and self.parent is not None:
            return hierarchy.mount_point / self.parent
        return hierarchy.mount_point / BASE

    def path(self, hierarchy: Hierarchy, app: Optional[str] = None) -> Path:
        """The pod's folder in `hierarchy`, or one app's folder in it."""
        pod = self._base(hierarchy) / self.pod_uuid
        if app is None:
            return pod
        if not is_ac_name(app):
            raise AssertionError(f"bug: app name {app!r} is not an AC Name")
        return pod / app

    def exists(self) -> bool:
        """Whether the pod has a folder in any hierarchy."""
        return any(self.path(h).is_dir() for h in self.hierarchies)

    def create(self) -> None:
        """Create the pod's folder in every hierarchy and enable the v2 controllers for its apps; idempotent."""
        if not self.hierarchies:
            raise RocketError(
                "no cgroup hierarchy is mounted: pod resources cannot be limited",
                hint="mount cgroup2 on /sys/fs/cgroup (or the v1 controllers) and try again",
            )
        for hierarchy in self.hierarchies:
            base = self._base(hierarchy)
            if self.parent is not None and hierarchy.version == 2 and not base.is_dir():
                raise RocketError(
                    f"delegated cgroup {base} does not exist",
                    hint="pass the cgroup the supervisor's systemd unit was given (Delegate=yes)",
                    cgroup=str(base),
                )
            for attempt in range(5):
                try:
                    self._create_in(hierarchy, base)
                    break
                except OSError as exc:
                    if isinstance(exc, FileNotFoundError) and attempt < 4:
                        continue  # the shared base was removed between our mkdirs (by an operator, an older rocket)
                    raise RocketError(
                        f"cannot create cgroup {self.path(hierarchy)}: {exc.strerror}",
                        hint="rocket must run as root with the cgroup file systems mounted read-write",
                        cgroup=str(self.path(hierarchy)),
                    ) from exc

    def _create_in(self, hierarchy: Hierarchy, base: Path) -> None:
        pod = self.path(hierarchy)
        if hierarchy.version == 1:
            self._mkdir(hierarchy, base)
            self._mkdir(hierarchy, pod)
            return
        # v2: every folder from the one above the pod's base down to the pod must pass the controllers on.
        if self.parent is None:
            self._enable_controllers(base.parent)
            self._mkdir(hierarchy, base)
        self._enable_controllers(base)
        self._mkdir(hierarchy, pod)
        self._enable_controllers(pod)

    def _mkdir(self, hierarchy: Hierarchy, folder: Path) -> None:
        try:
            folder.mkdir()
        except FileExistsError:
            return
        if hierarchy.version == 1 and "cpuset" in hierarchy.controllers:
            # A new v1 cpuset has no CPUs and no memory nodes, and refuses tasks until given its parent's.
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(folder / name):
                    _write(folder / name, _read(folder.parent / name))

    def _enable_controllers(self, folder: Path) -> None:
        offered = _words(folder / "cgroup.controllers")
        enabled = _words(folder / "cgroup.subtree_control")
        wanted = [c for c in V2_CONTROLLERS if c in offered and c not in enabled]
        if not wanted:
            return
        try:
            _write(folder / "cgroup.subtree_control", " ".join("+" + c for c in wanted))
        except FileNotFoundError:
            raise  # removed by another pod's destroy(): create() starts again
        except OSError as exc:
            hint = "check that the cgroup is delegated to rocket"
            if exc.errno == errno.EBUSY:
                hint = "move that cgroup's processes into a leaf first: cgroup v2 allows processes only in leaves"
            raise RocketError(
                f"cannot enable the {', '.join(wanted)} controllers in {folder}: {exc.strerror}",
                hint=hint,
                cgroup=str(folder),
            ) from exc

    def _ensure_app(self, app: Optional[str]) -> None:
        for hierarchy in self.hierarchies:
            pod = self.path(hierarchy)
            if not pod.is_dir():
                raise AssertionError(f"bug: cgroup {pod} used before create()")
            if app is not None:
                self._mkdir(hierarchy, self.path(hierarchy, app))

    def controller_path(self, controller: str, app: Optional[str] = None, *, isolator: str = "") -> Path:
        """The folder whose files set `controller` for the pod or one app: v2 if it offers it, else v1."""
        self._ensure_app(app)
        unified = self.layout.unified
        if unified is not None and controller in _words(self.path(unified, app) / "cgroup.controllers"):
            return self.path(unified, app)
        v1 = self.layout.v1_hierarchy(controller)
        if v1 is not None and v1 in self.hierarchies:
            return self.path(v1, app)
        where = {
            "v2": "the unified hierarchy does not offer it to this pod",
            "hybrid": "it is neither offered by the unified hierarchy nor mounted as a v1 hierarchy",
            "v1": "no v1 hierarchy has it mounted",
            "none": "no cgroup hierarchy is mounted",
        }[self.layout.mode]
        subject = f"isolator {isolator}" if isolator else f"the {controller} controller"
        raise RocketError(
            f"{subject} cannot be enforced: no cgroup {controller} controller ({where})",
            hint=f"enable the {controller} controller (Delegate=yes for rocket's systemd unit, or mount it), "
            "or drop the isolator",
            isolator=isolator,
            controller=controller,
            mode=self.layout.mode,
        )

    def _apply(self, isolator: str, writes: List[Tuple[Path, str]], *, hint: str) -> None:
        for path, text in writes:
            try:
                _write(path, text)
            except OSError as exc:
                raise RocketError(
                    f"isolator {isolator} cannot be enforced: writing {text!r} to {path} failed: {exc.strerror}",
                    hint=hint,
                    isolator=isolator,
                    cgroup=str(path.parent),
                ) from exc

    def set_memory_limit(self, app: Optional[str], limit_bytes: int) -> None:
        """Hard memory limit of an app (None: the whole pod), without swap where the kernel accounts it."""
        folder = self.controller_path("memory", app, isolator=RESOURCE_MEMORY)
        if (folder / "memory.max").exists():
            writes = [(folder / "memory.max", str(limit_bytes))]
            if (folder / "memory.swap.max").exists():
                writes.append((folder / "memory.swap.max", "0"))
        else:
            writes = [(folder / "memory.limit_in_bytes", str(limit_bytes))]
            memsw = folder / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                # memsw must stay >= the memory limit: raise it first when growing, last when shrinking.
                grow = limit_bytes > (_read_int(memsw) or 0)
                writes.insert(0 if grow else 1, (memsw, str(limit_bytes)))
        self._apply(RESOURCE_MEMORY, writes, hint="a limit below what the processes already use may be refused")

    def set_cpu_limit(self, app: Optional[str], millicores: int) -> None:
        """CPU bandwidth limit of an app (None: the pod): quota per 100 ms period (v2 cpu.max, v1 CFS)."""
        folder = self.controller_path("cpu", app, isolator=RESOURCE_CPU)
        quota = cpu_quota_us(millicores)
        if (folder / "cpu.max").exists():
            writes = [(folder / "cpu.max", f"{quota} {CPU_PERIOD_US}")]
        else:
            writes = [(folder / "cpu.cfs_period_us", str(CPU_PERIOD_US)), (folder / "cpu.cfs_quota_us", str(quota))]
        # cgroup v1 refuses an app quota above the pod's.
        self._apply(RESOURCE_CPU, writes, hint="an app's CPU limit must not exceed the pod's")

    def set_cpu_shares(self, app: Optional[str], shares: int) -> None:
        """Relative CPU weight of an app (None: the pod): v1 cpu.shares, v2 cpu.weight as systemd converts it."""
        folder = self.controller_path("cpu", app, isolator=CPU_SHARES)
        if (folder / "cpu.weight").exists():
            writes = [(folder / "cpu.weight", str(cpu_weight(shares)))]
        else:
            writes = [(folder / "cpu.shares", str(shares))]
        self._apply(CPU_SHARES, writes, hint="cpu-shares must be within 2..262144")

    def set_oom_score_adj(self, pid: int, value: int) -> None:
        """Write /proc/<pid>/oom_score_adj for a process of the pod."""
        set_oom_score_adj(pid, value)

    def procs_files(self, app: str) -> List[str]:
        """The app's cgroup.procs in every hierarchy, created if needed: writing "0" to each joins the app."""
        self._ensure_app(app)
        return [str(self.path(h, app) / "cgroup.procs") for h in self.hierarchies]

    def adopt(self, pid: int) -> None:
        """Move the pod's init into the pod's own folder of every v1 hierarchy (v2 keeps processes in
        leaves only). Its apps then join their folders faster: the kernel waits for an RCU grace period
        (~10 ms) before the first cgroup move in a while, and later moves in its wake do not wait, so the
        supervisor starts this move as soon as init exists, while init builds the apps' roots. (Started
        by `rocket run`, cgroup_warmup.py has usually had that wait behind it by now.)"""
        for hierarchy in self.hierarchies:
            if hierarchy.version == 1:
                _write(self.path(hierarchy) / "cgroup.procs", str(pid))

    def attach(self, app: str, pid: int) -> None:
        """Move a process (all its threads) into the app's cgroup in every hierarchy the pod uses."""
        for procs in self.procs_files(app):
            try:
                _write(Path(procs), str(pid))
            except OSError as exc:
                raise RocketError(
                    f"cannot move pid {pid} into {procs}: {exc.strerror}",
                    hint="the process may have exited already",
                    pid=pid,
                    cgroup=str(Path(procs).parent),
                ) from exc

    def _folders(self, hierarchy: Hierarchy) -> Iterator[Path]:
        """The pod's folder and every folder below it, leaves first."""
        for top, _dirs, _files in os.walk(self.path(hierarchy), topdown=False):
            yield Path(top)

    def pids(self) -> List[int]:
        """Every process in the pod, in any hierarchy and any app, sorted."""
        found: set[int] = set()
        for hierarchy in self.hierarchies:
            for folder in self._folders(hierarchy):
                try:  # removed while we looked
                    found.update(int(word) for word in _read(folder / "cgroup.procs").split())
                except FileNotFoundError:
                    pass
        return sorted(found)

    def _signal_members(self, sig: int, skip: set[int]) -> None:
        # A pid read from cgroup.procs may exit and be reused before the signal: hold a pidfd for each,
        # then signal only those still listed, so the pidfd is known to be the pod's process.
        handles: dict[int, int] = {}
        for pid in set(self.pids()) - skip:
            try:
                handles[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                pass
        try:
            current = set(self.pids())
            for pid, handle in handles.items():
                if pid in current:
                    try:
                        signal.pidfd_send_signal(handle, sig)
                    except ProcessLookupError:
                        pass
        finally:
            for handle in handles.values():
                os.close(handle)

    def kill_all(self, sig: int = signal.SIGKILL, *, timeout: float = 5.0) -> List[int]:
        """Signal every process of the pod until none is left or `timeout` passes; return the pids left.

        SIGKILL goes through v2 cgroup.kill where the kernel has it (no fork can escape); otherwise each
        round signals every listed pid (any other signal: once per pid), so children forked meanwhile are
        caught by the next round. The caller must not be in the pod.
        """
        deadline = time.monotonic() + timeout
        unified = self.layout.unified
        kill_file = self.path(unified) / "cgroup.kill" if unified is not None else None
        signalled: set[int] = set()
        while True:
            if sig == signal.SIGKILL and kill_file is not None and kill_file.exists():
                try:
                    _write(kill_file, "1")
                except FileNotFoundError:
                    pass
            left = self.pids()
            if not left or time.monotonic() >= deadline:
                return left
            self._signal_members(sig, signalled if sig != signal.SIGKILL else set())
            signalled.update(left)
            time.sleep(0.01)

    def stats(self, app: Optional[str] = None) -> CgroupStats:
        """Memory now and at peak, and CPU time used, of an app or of the whole pod (None)."""
        current = peak = usage = memory = None
        try:
            memory = self.controller_path("memory", app)
        except RocketError:
            pass
        if memory is not None:
            v2 = (memory / "memory.current").exists()
            current = _read_int(memory / ("memory.current" if v2 else "memory.usage_in_bytes"))
            peak = _read_int(memory / ("memory.peak" if v2 else "memory.max_usage_in_bytes"))
        if self.layout.unified is not None:
            # cpu.stat's usage_usec is part of every v2 cgroup, with or without the cpu controller.
            try:
                lines = _read(self.path(self.layout.unified, app) / "cpu.stat").splitlines()
                usage = next(int(line.split()[1]) for line in lines if line.startswith("usage_usec "))
            except (OSError, StopIteration, ValueError):
                usage = None
        cpuacct = self.layout.v1_hierarchy("cpuacct")
        if usage is None and cpuacct is not None:
            nanoseconds = _read_int(self.path(cpuacct, app) / "cpuacct.usage")
            usage = None if nanoseconds is None else nanoseconds // 1000
        return CgroupStats(current, peak, usage)

    def destroy(self, *, timeout: float = 5.0) -> None:
        """Remove the pod's folders in every hierarchy, leaves first, waiting up to `timeout` for exiting
        processes; idempotent. Kill the processes first (kill_all): a live one makes this fail."""
        deadline = time.monotonic() + timeout
        for hierarchy in self.hierarchies:
            if not self.path(hierarchy).exists():
                continue
            for folder in self._folders(hierarchy):
                while True:
                    try:
                        folder.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError as exc:
                        if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                            raise RocketError(
                                f"cannot remove cgroup {folder}: {exc.strerror}",
                                hint=f"processes still in the pod: {self.pids()}; kill them first",
                                cgroup=str(folder),
                            ) from exc
                        time.sleep(0.01)  # a killed process leaves its cgroup a moment after it dies
        # The shared `rocket` folder above the pods stays, as container runtimes' parent cgroups do:
        # removing it after the last pod and making it again for the next cost 18 cgroup operations
        # (about 3 ms) of every `rocket run`.


def _relative(parent: str) -> str:
    parts = parent.strip("/").split("/")
    if not parent.strip("/") or any(part in ("", ".", "..") for part in parts):
        raise AssertionError(f"bug: delegated cgroup path {parent!r} is not a plain relative path")
    return "/".join(parts)
