"""Pod lifecycle operations for the CLI and the modules: prepare, start, stop, status, remove, gc.

Each operation is one or more transitions of pod.py plus the work around them. Starting a pod hands its
lock to the supervisor (stage1/supervisor.py), which runs detached (`setsid`, or a transient systemd unit
where systemd is PID 1) or in the foreground in this very process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from . import cgroup_warmup
from .audit import AuditLog
from .errors import NetworkError, PodStateError, RocketError, TrustError, UsageError
from .fileio import atomic_write
from .net.dns import DnsOptions
from .paths import audit_log_path
from .pod import EXITED_GARBAGE, GARBAGE, HANDOVER, PREPARE, PREPARED, RUN, Pod
from .record import Record
from .render import rendered_rootfs
from .store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set

RESTART_POLICIES = ("no", "on-failure", "always")
FLAVORS = ("ns", "fly")  # stage1/flavor.py defines them
DEFAULT_GC_GRACE = 30 * 60
PREPARED_EXPIRY = 24 * 3600


DEFAULT_STOP_TIMEOUT = 10.0  # seconds from TERM to KILL when a pod's apps are stopped
STOP_WAIT = 30.0  # how long `stop` waits at least for the supervisors to finish
STOP_MARGIN = 20.0  # beyond a pod's stop timeout: post-stop handlers, teardown
ENTER_WAIT = 5.0  # how long `enter` waits for a just-started pod's app to be running


class PodOptions(Record):
    """Pod-level choices of `prepare`/`run` (the per-app ones are in the pod manifest)."""

    FIELDS = ("hostname", "flavor", "restart", "net", "dns", "interactive", "stop_timeout", "seccomp", "annotations")

    def __init__(
        self,
        hostname: str = "",
        flavor: str = "ns",
        restart: str = "no",
        net: str = "default",
        dns: Optional[DnsOptions] = None,
        interactive: bool = False,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        seccomp: Optional[Dict[str, str]] = None,
        annotations: Optional[Dict[str, str]] = None,
    ) -> None:
        self.hostname = hostname
        self.flavor = flavor
        self.restart = restart
        self.net = net  # rkt's --net: none, host, or networks (`default`, net.d names, `name:IP=...`)
        self.dns = DnsOptions() if dns is None else dns
        self.interactive = interactive
        self.stop_timeout = stop_timeout
        self.seccomp = {} if seccomp is None else seccomp
        self.annotations = {} if annotations is None else annotations

    def check(self) -> None:
        if self.restart not in RESTART_POLICIES:
            raise UsageError(f"unknown restart policy {self.restart!r}", hint="use no, on-failure or always")
        if self.flavor not in FLAVORS:
            raise UsageError(f"unknown isolation flavor {self.flavor!r}", hint="use ns (the default) or fly")


def check_runnable(store: Store, image_id: str, *, insecure_image: bool) -> None:
    """An image runs only if trust accepted it, unless the operator says --insecure-options=image now."""
    record = store.index.get(image_id)
    if record is None:
        raise PodStateError(f"image {image_id[:19]} is not in the store", hint="fetch it first")
    if insecure_image or record.trust.startswith(("signature:", "policy:")):
        return
    raise TrustError(
        f"image {record.name} ({image_id[:19]}) was not verified when it was fetched",
        hint="fetch it with its signature, or run it with --insecure-options=image",
        reason="unverified",
        image=image_id,
    )


def port_forwards(manifest: Dict[str, Any], image_apps: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The pod manifest's `ports` (and --port), each matched to the app port of its name."""
    declared: Dict[str, Dict[str, Any]] = {}
    for entry in manifest["apps"]:
        app = entry.get("app") or image_apps.get(entry["name"]) or {}
        for port in app.get("ports") or []:
            declared.setdefault(port["name"], port)
    forwards: List[Dict[str, Any]] = []
    for exposed in manifest.get("ports") or []:
        port = exposed.get("podPort") or declared.get(exposed["name"])
        if port is None:
            names = ", ".join(sorted(declared)) or "none"
            raise UsageError(
                f"port {exposed['name']} is forwarded, but no app of the pod declares a port of that name",
                hint=f"the apps' ports: {names}",
            )
        count = int(port.get("count") or 1)
        for offset in range(count):
            forwards.append(
                {
                    "name": exposed["name"],
                    "protocol": str(port.get("protocol", "tcp")),
                    "host_ip": str(exposed.get("hostIP") or ""),
                    "host_port": int(exposed["hostPort"]) + offset,
                    "pod_port": int(port["port"]) + offset,
                }
            )
    return forwards


def prepare(
    store: Store,
    manifest: Dict[str, Any],
    options: PodOptions,
    *,
    insecure_image: bool = False,
    durable: bool = True,
    config_dirs: Optional[List[Path]] = None,
) -> Pod:
    """Make a prepared pod from a reified pod manifest whose images are all in the store and trusted.

    durable=False (for `run`, which starts the pod at once) skips the fsyncs of its files and moves.
    `config_dirs` (local first, then system) hold the `net.d` networks the pod may join.
    """
    from .net.config import resolve_requests

    options.check()
    if options.interactive and len(manifest["apps"]) != 1:
        raise UsageError(
            f"--interactive runs one app, and this pod has {len(manifest['apps'])}",
            hint="give one image, or drop --interactive",
        )
    for entry in manifest["apps"]:
        check_runnable(store, entry["image"]["id"], insecure_image=insecure_image)
    net_mode, networks = resolve_requests(options.net, list(config_dirs or []))
    if options.flavor == "fly" and net_mode == "pod":
        net_mode, networks = "host", []  # fly runs in the host's namespaces; rkt's fly ignores --net too
    image_apps: Dict[str, Dict[str, Any]] = {
        entry["name"]: dict(store.manifest(entry["image"]["id"]).get("app") or {})  # type: ignore[call-overload]
        for entry in manifest["apps"]
    }
    forwards = port_forwards(manifest, image_apps)
    if forwards and net_mode != "pod":
        raise UsageError(
            f"ports cannot be forwarded with --net={options.net}",
            hint="a pod on the host's network listens on the host's ports itself; with none it has no address",
        )
    data_dir = store.paths.root
    pod = Pod.create(data_dir)
    pod.durable = durable
    try:
        pod.to_preparing()
        apps: Dict[str, Dict[str, str]] = {}
        for entry in manifest["apps"]:
            image_id = entry["image"]["id"]
            record = store.index.get(image_id)
            if record is None:
                raise PodStateError(f"image {image_id[:19]} of app {entry['name']} is not in the store")
            lower = rendered_rootfs(store, image_id)
            store.touch(image_id, unless_since=record.last_used)
            app_dir = pod.files.app_dir(entry["name"])
            app_dir.mkdir(parents=True)
            atomic_write(app_dir / "image-manifest", store.manifest_bytes(image_id), durable=durable)
            apps[entry["name"]] = {"image_id": image_id, "image_name": record.name, "lower": str(lower)}
        atomic_write(pod.files.manifest, json.dumps(manifest, indent=2).encode(), durable=durable)
        runtime = {
            "created": time.time(),
            "hostname": options.hostname or f"rocket-{pod.uuid}",
            "flavor": options.flavor,
            "restart": options.restart,
            "net": options.net,
            "net_mode": net_mode,
            "networks": [request.to_json() for request in networks],
            "ports": forwards,
            "dns": options.dns.to_json(),
            "interactive": options.interactive,
            "stop_timeout": options.stop_timeout,
            "seccomp": options.seccomp,
            "apps": apps,
        }
        atomic_write(pod.files.runtime, json.dumps(runtime, indent=2, sort_keys=True).encode(), durable=durable)
        pod.to_prepared()
    except BaseException:
        if pod.state in (PREPARE, PREPARED):
            pod.to_garbage()
            pod.delete()
        pod.unlock()
        raise
    pod.unlock()
    return pod


def engine_root() -> str:
    """The folder holding the `rocket` package this process runs (the supervisor runs the same code)."""
    return str(Path(__file__).resolve().parent.parent)


SUPERVISOR_LAUNCHERS = ("systemd", "setsid")
HANDOVER_TIMEOUT = 30.0


def supervisor_launcher() -> str:
    """How a detached supervisor starts: a transient systemd unit where systemd is PID 1, else setsid.

    ROCKET_SUPERVISOR=systemd|setsid overrides the choice (a host whose systemd is not PID 1, tests).
    """
    chosen = os.environ.get("ROCKET_SUPERVISOR", "")
    if chosen in SUPERVISOR_LAUNCHERS:
        return chosen
    if chosen:
        raise UsageError(f"ROCKET_SUPERVISOR={chosen!r} is not one of {', '.join(SUPERVISOR_LAUNCHERS)}")
    if not os.path.isdir("/run/systemd/system"):
        return "setsid"
    import shutil  # imported here and below only when needed: `rocket run` in the foreground uses neither

    return "systemd" if shutil.which("systemd-run") else "setsid"


def supervisor_command(
    pod: Pod, *, lock_fd: Optional[int], ready_fd: Optional[int], foreground: bool, engine: Optional[str] = None
) -> List[str]:
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    command = [
        python,
        "-I",
        "-S",
        "-c",
        # The collector is off until the pod's init is forked, as for `rocket run` (cli/entry.py).
        "import gc, sys; gc.disable(); sys.path.insert(0, sys.argv[1]); from rocket.stage1.boot import main; "
        "main(sys.argv[2:])",
        engine or engine_root(),
        str(pod.path),
    ]
    if pod.runtime().get("net_mode") == "pod":
        from .net.rtnl import pyroute2_home

        home = pyroute2_home()  # the supervisor runs with -I -S: pyroute2 from where this process finds it
        if home:
            command += ["--python-path", home]
    command += ["--lock-fd", str(lock_fd)] if lock_fd is not None else ["--take-lock"]
    if ready_fd is not None:
        command += ["--ready-fd", str(ready_fd)]
    if foreground:
        command.append("--foreground")
    return command


def refuse_detached_interactive() -> None:
    raise UsageError("an interactive pod runs in the foreground, at its terminal", hint="drop --detach")


def require_root(doing: str) -> None:
    """Refuse before anything is made: a pod's namespaces, mounts and cgroups need root (as rkt's do)."""
    if os.geteuid() != 0:
        raise UsageError(f"{doing} needs root", hint="run rocket as root, e.g. with sudo")


def start(pod: Pod, *, detach: bool, engine: Optional[str] = None) -> int:
    """prepared -> run, and start the supervisor; returns the exit code (foreground) or 0 once running.

    `engine` is the folder holding the `rocket` package a detached supervisor runs from (default:
    this process's own); the modules give an installed engine copy (engine_copy.py).
    """
    require_root("running a pod")
    if pod.state != PREPARED:
        raise PodStateError(f"pod {pod.uuid} is {pod.display_state()}, not prepared", hint="prepare a new pod")
    if detach and pod.runtime().get("interactive"):
        refuse_detached_interactive()
    pod.lock()
    pod.to_run()
    lock_fd = pod.lock_fd()
    os.set_inheritable(lock_fd, True)
    AuditLog(audit_log_path(pod.data_dir)).record(
        "pod-start", pod=pod.uuid, images=[a["image_id"] for a in pod.runtime().get("apps", {}).values()]
    )
    if not detach:
        from .stage1.boot import run_supervisor

        return run_supervisor(pod.path, lock_fd=lock_fd, ready_fd=None, foreground=True)
    # The detached supervisor moves init into the pod's cgroups once its interpreter is up: the
    # kernel's wait before that first move runs meanwhile (cgroup_warmup.py).
    cgroup_warmup.start()
    try:
        if supervisor_launcher() == "systemd":
            return _start_unit(pod, engine)
        return _start_detached(pod, lock_fd, engine)
    finally:
        cgroup_warmup.stop()


def _start_detached(pod: Pod, lock_fd: int, engine: Optional[str]) -> int:
    """Start the supervisor with setsid; returns 0 once it says the pod runs."""
    import subprocess

    read_end, write_end = os.pipe()
    command = supervisor_command(pod, lock_fd=lock_fd, ready_fd=write_end, foreground=False, engine=engine)
    with open(os.devnull, "rb") as null_in, open(pod.path / "supervisor.log", "ab") as log:
        process = subprocess.Popen(
            command, stdin=null_in, stdout=log, stderr=log, pass_fds=(lock_fd, write_end), start_new_session=True
        )
    os.close(write_end)
    pod.unlock()  # the supervisor holds its own copy of the lock now
    with os.fdopen(read_end, "rb") as ready:
        answer = ready.readline()
    if answer.strip() != b"running":
        process.wait(timeout=10)
        detail = (pod.path / "supervisor.log").read_text(errors="replace").strip().splitlines()
        raise PodStateError(
            f"pod {pod.uuid} did not start: {detail[-1] if detail else 'the supervisor exited'}",
            hint=f"see {pod.path / 'supervisor.log'}",
            pod=pod.uuid,
        )
    return 0


def _start_unit(pod: Pod, engine: Optional[str]) -> int:
    """Start the supervisor as a transient systemd unit, which takes the pod's lock over from us.

    A unit cannot inherit our descriptor, so the lock is handed over: a `handover` file marks the pod as
    starting (gc and status leave it alone), we drop the lock, the supervisor takes it and removes the
    file. Its output and the apps' go to the journal as well as to the log files.
    """
    unit = f"rocket-{pod.uuid}"
    handover = pod.path / HANDOVER
    atomic_write(handover, str(time.time()).encode())
    command = [
        "systemd-run",
        f"--unit={unit}",
        f"--description=rocket pod {pod.uuid}",
        "--collect",
        "--quiet",
        "--property=Delegate=yes",
        "--property=KillMode=mixed",
        "--",
        *supervisor_command(pod, lock_fd=None, ready_fd=None, foreground=False, engine=engine),
    ]
    pod.unlock()
    import subprocess

    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        handover.unlink(missing_ok=True)
        raise PodStateError(
            f"systemd-run could not start pod {pod.uuid}: {result.stderr.strip() or result.returncode}",
            hint="check systemd with 'systemctl status', or set ROCKET_SUPERVISOR=setsid",
            pod=pod.uuid,
        )
    deadline = time.monotonic() + HANDOVER_TIMEOUT
    while time.monotonic() < deadline:
        if pod.is_locked_by_other() and pod.read_json(pod.files.status).get("state") == "running":
            return 0
        if not handover.exists() and not pod.is_locked_by_other():
            break  # the supervisor took the pod and already ended, or never came
        time.sleep(0.02)
    handover.unlink(missing_ok=True)
    if pod.read_json(pod.files.status).get("state") == "exited":
        return 0  # it ran and finished already
    raise PodStateError(
        f"pod {pod.uuid} did not start in unit {unit}",
        hint=f"see 'journalctl -u {unit}'",
        pod=pod.uuid,
    )


def supervisor_pid(pod: Pod) -> Optional[int]:
    """The supervisor's pid, if that process is still the one that started (same start time)."""
    from .stage1.supervisor import process_start_time

    record = pod.read_json(pod.files.supervisor)
    pid = record.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        if process_start_time(pid) != record.get("start_time"):
            return None  # the pid was reused by another process
    except (OSError, ValueError, IndexError):
        return None
    return pid


def stop(pods: List[Pod], *, force: bool = False, wait: Optional[float] = None) -> None:
    """Ask the supervisors to stop the pods (SIGTERM; --force: SIGKILL to everything), then wait for all.

    Every pod is signalled before any is waited for, so stopping many pods takes as long as the slowest.
    By default the wait allows the longest stop timeout of the pods (TERM to KILL) and STOP_MARGIN for
    the post-stop handlers and the teardown: a pod given --stop-timeout=60 is not reported as stuck
    after 30 s while it stops as told.
    """
    for pod in pods:
        if not pod.is_running():
            raise PodStateError(f"pod {pod.uuid} is not running", hint="see 'rocket list'", pod=pod.uuid)
    if wait is None:
        timeouts = [float(pod.runtime().get("stop_timeout", DEFAULT_STOP_TIMEOUT)) for pod in pods]
        wait = max(STOP_WAIT, max(timeouts, default=0.0) + STOP_MARGIN)
    for pod in pods:
        pid = supervisor_pid(pod)
        if force:
            _kill_pod_processes(pod)
        if pid is not None:
            os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
    deadline = time.monotonic() + wait
    pending = list(pods)
    while pending and time.monotonic() < deadline:
        pending = [pod for pod in pending if pod.is_locked_by_other()]
        if pending:
            time.sleep(0.01)
    if pending:
        shown = ", ".join(pod.uuid for pod in pending)
        raise PodStateError(f"pods did not stop within {wait:.0f}s: {shown}", hint="use --force")
    audit = AuditLog(audit_log_path(pods[0].data_dir)) if pods else None
    for pod in pods:
        _release_network(pod)  # a supervisor that was killed could not do it itself
        if audit is not None:
            audit.record("pod-stop", pod=pod.uuid, force=force)


def _kill_pod_processes(pod: Pod) -> None:
    status = pod.read_json(pod.files.status)
    init_pid = status.get("init_pid")
    if isinstance(init_pid, int):
        try:
            os.kill(init_pid, signal.SIGKILL)
        except OSError:
            pass
    from .cgroups import PodCgroup, detect

    try:
        PodCgroup(detect(), pod.uuid, parent=pod.files.cgroup_parent()).kill_all(signal.SIGKILL)
    except (RocketError, OSError):
        # Killing init above already ends every process of the pod's PID namespace; the cgroup sweep only
        # catches processes of a fly pod or ones that left the namespace, and gc retries the cgroup.
        return


def status(pod: Pod) -> Dict[str, Any]:
    """What `rocket status` shows: state, times, pid, each app's exit."""
    runtime = pod.runtime()
    record = pod.read_json(pod.files.status)
    state = pod.display_state()
    result: Dict[str, Any] = {
        "uuid": pod.uuid,
        "state": state,
        "created": runtime.get("created"),
        "started": record.get("started"),
        "finished": record.get("finished") if state == "exited" else None,
        "pid": supervisor_pid(pod) if state == "running" else None,
        "exit_code": record.get("exit_code") if state == "exited" else None,
        "networks": [],
        "ports": [],
        "apps": {},
    }
    network = pod.read_json(pod.files.network)
    if state == "running" or not network.get("released"):
        result["networks"] = [
            {key: entry.get(key, "") for key in ("name", "ifname", "address", "gateway")}
            for entry in network.get("networks") or []
        ]
        result["ports"] = list(network.get("ports") or [])
    if state == "exited" and record.get("state") == "running":
        result["exit_code"] = None  # the supervisor died without recording the pod's end
        result["note"] = "the supervisor was killed; the pod's end was not recorded"
    for name, info in (runtime.get("apps") or {}).items():
        app_status = pod.read_json(pod.files.app_status(name))
        result["apps"][name] = {
            "image_id": info.get("image_id"),
            "image_name": info.get("image_name"),
            "exit_code": app_status.get("exit_code"),
            "signal": app_status.get("signal"),
            "started": app_status.get("started"),
            "finished": app_status.get("finished"),
        }
    return result


def remove(pod: Pod) -> None:
    """Delete an exited or prepared pod (running pods must be stopped first)."""
    if pod.is_running():
        raise PodStateError(f"pod {pod.uuid} is running", hint="stop it first", pod=pod.uuid)
    pod.lock()
    try:
        if pod.state == RUN:
            pod.to_exited_garbage()
        _cleanup(pod)
        pod.to_garbage()
        pod.delete()
    finally:
        pod.unlock()


def _release_network(pod: Pod) -> None:
    """Give back the leases, ports, nftables rules and CNI attachments of a pod whose supervisor is gone."""
    from .net.attach import release

    problems = release(pod.files, pod.uuid, pod.data_dir)
    if problems:
        raise NetworkError(
            f"cannot release the networks of pod {pod.uuid}: {'; '.join(problems)}",
            hint="fix the cause, then run 'rocket gc' (or 'rocket rm') again",
            pod=pod.uuid,
        )


def _cleanup(pod: Pod) -> None:
    """Remove what a dead pod may have left outside its folder: network state and cgroups."""
    from .cgroups import PodCgroup, detect

    _release_network(pod)
    group = PodCgroup(detect(), pod.uuid, parent=pod.files.cgroup_parent())
    if not group.exists():
        return
    try:
        group.destroy()
    except RocketError as exc:
        raise PodStateError(
            f"cannot remove the cgroups of pod {pod.uuid}: {exc.message}",
            hint="a process of the pod is still alive; stop the pod with --force, then gc again",
            pod=pod.uuid,
        ) from exc


def gc(data_dir: Path, *, grace_seconds: float = DEFAULT_GC_GRACE) -> List[str]:
    """Move exited pods to exited-garbage, delete those past the grace period and stale prepared pods."""
    removed: List[str] = []
    now = time.time()
    for pod in Pod.all(data_dir):
        try:
            if pod.state == RUN and not pod.is_locked_by_other() and not pod.is_starting():
                pod.lock()
                pod.to_exited_garbage()
                atomic_write(pod.path / "exited-at", str(now).encode())
                pod.unlock()
            if pod.state == EXITED_GARBAGE:
                try:
                    exited = float((pod.path / "exited-at").read_text())
                except (OSError, ValueError):
                    exited = 0.0
                if now - exited >= grace_seconds:
                    pod.lock()
                    try:
                        _cleanup(pod)
                        pod.to_garbage()
                        pod.delete()
                    finally:
                        pod.unlock()
                    removed.append(pod.uuid)
            elif pod.state == PREPARED and now - pod.created() > PREPARED_EXPIRY:
                pod.lock()
                try:
                    pod.to_garbage()
                    pod.delete()
                finally:
                    pod.unlock()
                removed.append(pod.uuid)
            elif pod.state == GARBAGE:
                pod.delete()  # a deletion that a crash interrupted
                removed.append(pod.uuid)
        except (PodStateError, NetworkError):
            continue  # in use by another command right now, or its network cannot be released yet
    return removed


def enter(pod: Pod, *, app: Optional[str], argv: List[str]) -> int:
    """Run `argv` inside a running app of the pod with the app's namespaces, cgroup, capabilities and seccomp."""
    from .cgroups import PodCgroup, detect
    from .stage1.enter import enter as enter_app
    from .stage1.plan import build_plan

    require_root("entering a pod")
    if os.isatty(0):
        from .stage1.terminal import require_foreground

        require_foreground("rocket enter")  # its command gets a terminal of its own (stage1/terminal.py)
    if not pod.is_running():
        raise PodStateError(f"pod {pod.uuid} is not running", hint="start it, or see 'rocket list'", pod=pod.uuid)
    apps = sorted((pod.runtime().get("apps") or {}).keys())
    name = app or (apps[0] if len(apps) == 1 else None)
    if name is None or name not in apps:
        raise UsageError(f"say which app to enter: --app with one of {', '.join(apps)}")
    cgroup = PodCgroup(detect(), pod.uuid, parent=pod.files.cgroup_parent())
    plan = build_plan(pod.files, pod.uuid, metadata_url="", cgroup=cgroup)
    run = next(a for a in plan.run.apps if a.name == name)
    # Right after `run --detach` returns, init may still be building the app's root: wait for the app.
    deadline = time.monotonic() + ENTER_WAIT
    while True:
        try:
            target = _app_host_pid(cgroup, name, pod.read_json(pod.files.app_status(name)).get("pid"))
            break
        except PodStateError:
            if time.monotonic() > deadline or not pod.is_running():
                raise
            time.sleep(0.02)
    return enter_app(target, run.main, argv or ["/bin/sh"])


def _app_host_pid(cgroup: Any, app: str, ns_pid: Any) -> int:
    """The host pid of an app's main process: the process in its cgroup whose pod-namespace pid is `ns_pid`
    (None while init has not started the app: a pre-start handler in its cgroup is not the app)."""
    if ns_pid is None:
        raise PodStateError(f"app {app} has not started yet", hint="see 'rocket status'")
    candidates: List[int] = []
    for procs in cgroup.procs_files(app):
        try:
            candidates = [int(line) for line in Path(procs).read_text().split()]
        except OSError:
            continue
        if candidates:
            break
    for pid in candidates:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == str(ns_pid):
                return pid
    if candidates:
        return min(candidates)
    raise PodStateError(f"app {app} has no running process", hint="it may have exited; see 'rocket status'")


def export_app(pod: Pod, *, app: Optional[str], output: Path, overwrite: bool = False) -> str:
    """Write an app of a pod that is not running as an ACI: its image with the app's changes on top."""
    import tempfile

    from .build import build_image
    from .treecopy import apply_overlay_upper, merge_tree

    if pod.is_running():
        raise PodStateError(f"pod {pod.uuid} is running", hint="stop it first: its files are still changing")
    runtime = pod.runtime()
    apps = sorted((runtime.get("apps") or {}).keys())
    name = app or (apps[0] if len(apps) == 1 else None)
    if name is None or name not in apps:
        raise UsageError(f"say which app to export: --app with one of {', '.join(apps)}")
    image_manifest = json.loads(pod.files.app_dir(name).joinpath("image-manifest").read_bytes())
    pod_manifest = json.loads(pod.files.manifest.read_bytes())
    entry = next(a for a in pod_manifest["apps"] if a["name"] == name)
    if entry.get("app"):
        image_manifest["app"] = entry["app"]  # the app as it ran, with the flags it was given
    with tempfile.TemporaryDirectory(prefix="rocket-export-", dir=str(pod.path)) as scratch:
        rootfs = os.path.join(scratch, "rootfs")
        merge_tree(runtime["apps"][name]["lower"], rootfs, hardlink=False)
        upper = pod.files.app_upper(name)
        if upper.is_dir():
            apply_overlay_upper(str(upper), rootfs)
        atomic_write(os.path.join(scratch, "manifest"), json.dumps(image_manifest, indent=2).encode())
        if output.exists() and not overwrite:
            raise UsageError(f"{output} exists", hint="remove it or pass --overwrite")
        return build_image(Path(scratch), output, compression="gzip", overwrite=overwrite).image_id


def images_in_use(data_dir: Path) -> Set[str]:
    """Image IDs of every pod that is not garbage: their rendered trees are, or will be, a pod's root."""
    used: Set[str] = set()
    for pod in Pod.all(data_dir):
        if pod.state != GARBAGE:
            used.update(app.get("image_id", "") for app in (pod.runtime().get("apps") or {}).values())
    used.discard("")
    return used
