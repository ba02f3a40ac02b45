#!/usr/bin/env python3
"""How long `rocket run` takes to start a pod and see its app exit, next to runc and podman.

The issue's benchmark: from `rocket run` to the exit of `/bin/true` in a busybox pod whose image is
already in the store, against the two programs a user would run instead on the same root filesystem:

    rocket --dir DATA run --net=none --insecure-options=image bench.rocket.test/busybox --exec /bin/true
    runc run --bundle BUNDLE ID                     (config.json: that rootfs, args ["/bin/true"])
    podman run --network none localhost/rocket-bench-busybox /bin/true     (`podman import` of it)

The goals are a median within 2x of runc's and at most half of podman's. Every contender runs once
untimed, then all of them in turn, --runs times, in the opposite order every other round; exited pods
and containers are removed and the file system synced between runs, outside the timing. The disk is
shared, so only the ratios measured side by side in one run mean anything.

rocket is timed in three forms, the same engine with three start-up paths: this checkout's console
script (`.venv/bin/rocket`, or --rocket PATH: a virtual environment with an editable install, a path in a .pth),
`/usr/bin/python3 -m rocket` with PYTHONPATH=plugins/module_utils, and the host launcher, what the
appc.rocket.engine module installs as /usr/bin/rocket on a managed host (a `python3 -IS` script with the engine
copy first on sys.path).

Then the idle-pod part: --pods detached pods running `/bin/sleep 3600`, started one after the other
(pods per second), their memory as the sum of the PSS of every process of each pod (supervisor, pod
init, app), then one `rocket stop` with all their UUIDs and one `rocket gc --grace-period=0s`, timed,
and a check that nothing is left: no process, no pods/run entry, no cgroup, no mount.

The script sets up what it needs (as root): the Debian packages runc, podman and busybox-static if
missing, podman's /etc/containers/containers.conf settings for this machine (docs: shared DESIGN.md,
"Machines here") if absent, a busybox rootfs, the rocket image built from it, a runc bundle on the
same rootfs and a podman image imported from a tar of it. It removes everything it made, except the
packages and the podman configuration, even when a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
ENGINE_PARENT = REPO / "plugins" / "module_utils"
VENV_ROCKET = REPO / ".venv" / "bin" / "rocket"
SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_WORK = Path("/var/tmp/rocket-bench")

KIB = 1 << 10
MB = 1_000_000

IMAGE_NAME = "bench.rocket.test/busybox"
PODMAN_IMAGE = "localhost/rocket-bench-busybox"
PODMAN_LABEL = "rocket-bench-start"
RUNC_PREFIX = "rocket-bench-start-"
APPLETS = ("sh", "true", "false", "sleep", "echo", "cat", "ls")
MANIFEST = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": IMAGE_NAME,
    "labels": [
        {"name": "version", "value": "1.35.0"},
        {"name": "os", "value": "linux"},
        {"name": "arch", "value": "amd64"},
    ],
    "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
}
SOURCE_DATE_EPOCH = "1700000000"

PACKAGES = ("runc", "podman", "busybox-static")
BUSYBOX = Path("/bin/busybox")
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
# What podman 4.3 needs on this machine (DESIGN.md, "Machines here"): runc (crun refuses hybrid
# cgroups), cgroupfs (no system bus), and ulimits it may set without CAP_SYS_RESOURCE.
PODMAN_ENGINE = {"runtime": "runc", "cgroup_manager": "cgroupfs"}
PODMAN_ULIMITS = ("nofile=20000:20000", "nproc=1000:1000")
PODMAN_CONF_TEXT = f"""\
# Written by rocket's bench/start.py: what podman needs on this machine (see DESIGN.md, "Machines here").
[containers]
default_ulimits = [{", ".join(f'"{limit}"' for limit in PODMAN_ULIMITS)}]

[engine]
runtime = "{PODMAN_ENGINE["runtime"]}"
cgroup_manager = "{PODMAN_ENGINE["cgroup_manager"]}"
"""

RUNC_GOAL = 2.0  # rocket at most 2x runc
PODMAN_GOAL = 0.5  # rocket at most half of podman

ROCKET_VENV = "rocket (console script)"
ROCKET_MODULE = "rocket (python3 -m)"
ROCKET_HOST = "rocket (host launcher)"
RUNC = "runc run"
PODMAN = "podman run --network none"

APP_WAIT = 20.0  # seconds to wait for every idle pod's app to be running
EXIT_WAIT = 3.0  # seconds to let stopped processes disappear before calling them left over


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and what to do about it."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def command_text(argv: Sequence[object]) -> str:
    return shlex.join(str(word) for word in argv)


def check_run(argv: Sequence[object], *, what: str, env: Optional[Dict[str, str]] = None, timeout: float = 600) -> str:
    """Run a setup or clean-up command; return its stdout, or raise BenchError naming the step."""
    try:
        done = subprocess.run(
            [str(word) for word in argv], env=env, capture_output=True, text=True, check=False, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{what}: {command_text(argv)}: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
        raise BenchError(f"{what}: {command_text(argv)} exited {done.returncode}:\n  " + "\n  ".join(detail))
    return done.stdout


# -- setting up the machine ------------------------------------------------------------------------


def installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return done.returncode == 0 and done.stdout.strip() == "install ok installed"


def install_packages() -> List[str]:
    """apt-get install the missing peers; returns what it installed."""
    missing = [package for package in PACKAGES if not installed(package)]
    if not missing:
        return []
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-q", *missing]
    try:
        check_run(command, what="installing the peers", env=env, timeout=1200)
    except BenchError:
        log("apt-get install failed; running apt-get update and trying again")
        check_run(["apt-get", "update", "-q"], what="apt-get update", env=env, timeout=1200)
        check_run(command, what="installing the peers", env=env, timeout=1200)
    return missing


def podman_conf_ok(text: str) -> bool:
    """Whether a containers.conf already has the settings podman needs here."""
    try:
        import tomllib  # type: ignore[import-not-found]  # Python 3.11+
    except ImportError:  # Python < 3.11: compare the lines, spaces ignored
        lines = {line.split("#")[0].replace(" ", "") for line in text.splitlines()}
        wanted = {f'{key}="{value}"' for key, value in PODMAN_ENGINE.items()}
        ulimits = [line for line in lines if line.startswith("default_ulimits=")]
        return wanted <= lines and bool(ulimits) and all(f'"{limit}"' in ulimits[0] for limit in PODMAN_ULIMITS)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    engine, containers = data.get("engine", {}), data.get("containers", {})
    return all(engine.get(key) == value for key, value in PODMAN_ENGINE.items()) and all(
        limit in (containers.get("default_ulimits") or []) for limit in PODMAN_ULIMITS
    )


def configure_podman() -> Optional[str]:
    """Write podman's configuration if it is absent or lacks the settings; returns what it did."""
    existing = CONTAINERS_CONF.read_text() if CONTAINERS_CONF.exists() else None
    if existing is not None and podman_conf_ok(existing):
        return None
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    note = f"wrote {CONTAINERS_CONF} (runtime runc, cgroupfs, ulimits podman may set here)"
    if existing is not None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = CONTAINERS_CONF.with_name(f"{CONTAINERS_CONF.name}.rocket-bench-{stamp}.bak")
        shutil.copy2(CONTAINERS_CONF, backup)
        note += f"; it lacked those settings, the previous file is kept as {backup}"
    CONTAINERS_CONF.write_text(PODMAN_CONF_TEXT)
    print(note, flush=True)
    return note


def make_rootfs(image_dir: Path) -> Path:
    """The busybox image folder of demo/engine-demo.sh: DIR/manifest and DIR/rootfs."""
    rootfs = image_dir / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (image_dir / "manifest").write_text(json.dumps(MANIFEST, indent=2) + "\n")
    return rootfs


def make_runc_bundle(bundle: Path, rootfs: Path, args: List[str]) -> Path:
    """`runc spec`, then the same rootfs, the app's arguments and no terminal."""
    bundle.mkdir()
    check_run(["runc", "spec", "--bundle", bundle], what="making the runc bundle")
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["root"]["path"] = str(rootfs)
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return bundle


# -- the contenders --------------------------------------------------------------------------------


def _measuring_launcher() -> str:
    """import.py's MEASURE: runs argv[2:] and writes "<exit code> <seconds> <peak RSS in KiB>" to argv[1].

    A separate `python -I -S` of a few MB because Linux charges a child with the peak RSS of the process
    it was forked from; that launcher's size is the floor of every RSS figure.
    """
    spec = importlib.util.spec_from_file_location("rocket_bench_import", Path(__file__).resolve().parent / "import.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load bench/import.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return str(module.MEASURE)


MEASURE = _measuring_launcher()


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds from fork to reaping, the peak RSS of the waited-for tree, the exit code."""

    seconds: float
    peak_rss_kib: int
    code: int


def run_measured(argv: Sequence[str], *, env: Dict[str, str], scratch: Path) -> Tuple[Run, str]:
    """Run `argv` through the measuring launcher; return the run and its stderr (raise if the launcher fails)."""
    report = scratch / "measure"
    with open(scratch / "stdout", "w+b") as out, open(scratch / "stderr", "w+b") as err:
        launcher = [sys.executable, "-I", "-S", "-c", MEASURE, str(report), *[str(word) for word in argv]]
        subprocess.run(launcher, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=False)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    try:
        code, seconds, peak_kib = report.read_text().split()
        report.unlink()
    except (OSError, ValueError):
        raise BenchError(f"the measuring launcher failed on {command_text(argv)}:\n{stderr.strip()}") from None
    return Run(seconds=float(seconds), peak_rss_kib=int(peak_kib), code=int(code)), stderr


@dataclass
class Rocket:
    """One way to start rocket: its argv prefix, environment and a description for the report."""

    argv: List[str]
    env: Dict[str, str]
    description: str

    def command(self, data: Path, *words: object) -> List[str]:
        return [*self.argv, "--dir", str(data), *[str(word) for word in words]]


def rocket_forms(rocket: Optional[str], scratch: Path) -> Dict[str, Rocket]:
    """The console script (this checkout's .venv, or --rocket) and `python3 -m rocket` on this tree."""
    base = dict(os.environ)
    # Let Python cache compiled modules, as it does for an installed rocket, but under the scratch
    # folder, even if the shell sets PYTHONDONTWRITEBYTECODE (as import.py does). The warm-up fills it.
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    base.pop("PYTHONPATH", None)
    base["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    forms: Dict[str, Rocket] = {}
    script = rocket or (str(VENV_ROCKET) if VENV_ROCKET.exists() else None)
    if script:
        path = shutil.which(script)
        if path is None:
            raise BenchError(f"--rocket {script}: no such executable; give the path of an installed rocket")
        forms[ROCKET_VENV] = Rocket([path], base, f"{path} ({interpreter_of(Path(path))})")
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    module_env = dict(base, PYTHONPATH=str(ENGINE_PARENT))
    forms[ROCKET_MODULE] = Rocket(
        [python, "-m", "rocket"], module_env, f"{python} -m rocket with PYTHONPATH={ENGINE_PARENT}"
    )
    forms[ROCKET_HOST] = Rocket(
        [str(host_launcher(python, scratch))],
        base,
        f"{python} -IS with {ENGINE_PARENT} first on sys.path, as /usr/bin/rocket on a managed host",
    )
    return forms


def host_launcher(python: str, scratch: Path) -> Path:
    """What appc.rocket.engine installs as /usr/bin/rocket on a managed host, the same text, running this
    tree's engine instead of a copy: a script for `python -IS` with the engine first on sys.path."""
    sys.path.insert(0, str(ENGINE_PARENT))
    from rocket.engine_copy import launcher_script

    launcher = scratch / "rocket"
    launcher.write_text(launcher_script(python, str(ENGINE_PARENT)))
    launcher.chmod(0o755)
    return launcher


def engine_digest() -> str:
    """A short hash of the engine's source files: tells whether the engine changed during the run."""
    digest = hashlib.sha256()
    for path in sorted((ENGINE_PARENT / "rocket").rglob("*.py")):
        digest.update(str(path.relative_to(ENGINE_PARENT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def engine_revision() -> str:
    """The checkout's commit, and whether the engine has uncommitted changes (others edit it too)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", str(ENGINE_PARENT)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown commit", ""
    state = f"{head}, with uncommitted engine changes" if dirty else head
    return f"{state} (sources {engine_digest()})"


def interpreter_of(script: Path) -> str:
    """What runs a console script: its #! line, resolved."""
    try:
        with open(script, "rb") as stream:
            first = stream.readline().decode(errors="replace").strip()
    except OSError:
        return "unknown interpreter"
    if not first.startswith("#!"):
        return "a binary"
    words = first[2:].split()
    program = os.path.realpath(words[0]) if words else "?"
    return f"#!{first[2:]} -> {program}"


class Contenders:
    """How to run each contender once, and how to clear up after a round, on the shared rootfs."""

    def __init__(self, *, rockets: Dict[str, Rocket], data: Path, bundles: Dict[str, Path], scratch: Path) -> None:
        self.rockets = rockets
        self.data = data
        self.bundles = bundles
        self.scratch = scratch
        self.runc_count = 0
        self.plain_env = dict(os.environ)
        self.names = (*rockets, RUNC, PODMAN)

    def argv(self, name: str, program: str = "/bin/true") -> List[str]:
        if name in self.rockets:
            return self.rockets[name].command(
                # no network, as podman's --network none and runc's bundle (which has none either)
                self.data,
                "run",
                "--net=none",
                "--insecure-options=image",
                IMAGE_NAME,
                "--exec",
                program,
            )
        if name == RUNC:
            self.runc_count += 1
            return [
                "runc",
                "run",
                "--bundle",
                str(self.bundles[program]),
                f"{RUNC_PREFIX}{os.getpid()}-{self.runc_count}",
            ]
        return ["podman", "run", "--network", "none", "--label", PODMAN_LABEL, PODMAN_IMAGE, program]

    def run(self, name: str, program: str = "/bin/true") -> Run:
        env = self.rockets[name].env if name in self.rockets else self.plain_env
        argv = self.argv(name, program)
        result, stderr = run_measured(argv, env=env, scratch=self.scratch)
        if program == "/bin/true" and result.code != 0:
            raise BenchError(f"{name}: {command_text(argv)} failed with exit code {result.code}:\n{stderr.strip()}")
        return result

    def tidy(self) -> None:
        """Untimed, after each round: remove the exited pods and containers, and flush dirty pages."""
        rocket = next(iter(self.rockets.values()))
        check_run(rocket.command(self.data, "gc", "--grace-period=0s"), what="rocket gc", env=rocket.env)
        remove_podman_containers()
        os.sync()

    def check_exit_codes(self) -> None:
        """Each contender must run the app and return its exit code: `/bin/false` must give 1."""
        for name in self.names:
            code = self.run(name, "/bin/false").code
            if code != 1:
                raise BenchError(f"{name}: ran /bin/false and exited {code}, not 1: it does not report the app's exit")
        self.tidy()


def remove_podman_containers() -> None:
    ids = check_run(
        ["podman", "ps", "-a", "-q", "--filter", f"label={PODMAN_LABEL}"], what="listing podman containers"
    ).split()
    if ids:
        check_run(["podman", "rm", "-f", *ids], what="removing podman containers")


# -- measuring the start ---------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` quantile, interpolated between the runs (so never outside min..max)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class StartResult:
    """All timed runs of every contender."""

    names: Tuple[str, ...]
    runs: Dict[str, List[Run]] = field(default_factory=dict)

    def seconds(self, name: str) -> List[float]:
        return [run.seconds for run in self.runs[name]]

    def median(self, name: str) -> float:
        return statistics.median(self.seconds(name))

    def p90(self, name: str) -> float:
        return percentile(self.seconds(name), 0.9)

    def peak_rss_mb(self, name: str) -> float:
        return max(run.peak_rss_kib for run in self.runs[name]) * KIB / MB

    def rockets(self) -> List[str]:
        return [name for name in self.names if name.startswith("rocket")]

    def ratio(self, rocket: str, peer: str) -> float:
        return self.median(rocket) / self.median(peer)


def measure_start(contenders: Contenders, *, runs: int) -> StartResult:
    """Warm every contender up once, then run them in turn `runs` times, reversing the order each round."""
    names = contenders.names
    log("checking that every contender returns the app's exit code ...")
    contenders.check_exit_codes()
    log("warming up ...")
    for name in names:
        contenders.run(name)
    contenders.tidy()
    result = StartResult(names=names, runs={name: [] for name in names})
    for round_number in range(runs):
        log(f"round {round_number + 1}/{runs} ...")
        order = names if round_number % 2 == 0 else tuple(reversed(names))
        for name in order:
            result.runs[name].append(contenders.run(name))
            os.sync()
        contenders.tidy()
    return result


# -- idle pods -------------------------------------------------------------------------------------


def process_start_time(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


def process_table() -> Dict[int, Tuple[int, str]]:
    """pid -> (parent pid, command name) of every process, from one pass over /proc."""
    table: Dict[int, Tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stream:
                data = stream.read()
        except OSError:
            continue
        name = data[data.index(b"(") + 1 : data.rindex(b")")].decode(errors="replace")
        table[int(entry.name)] = (int(data[data.rindex(b")") + 2 :].split()[1]), name)
    return table


def descendants(root: int, table: Dict[int, Tuple[int, str]]) -> Dict[int, int]:
    """Every process below `root`, with its depth (1: child, 2: grandchild, ...)."""
    children: Dict[int, List[int]] = {}
    for pid, (parent, _name) in table.items():
        children.setdefault(parent, []).append(pid)
    found: Dict[int, int] = {}
    stack = [(root, 0)]
    while stack:
        pid, depth = stack.pop()
        for child in children.get(pid, []):
            found[child] = depth + 1
            stack.append((child, depth + 1))
    return found


def smaps_kib(pid: int) -> Tuple[int, int]:
    """(PSS, RSS) of one process in KiB, from /proc/PID/smaps_rollup; (0, 0) if it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as stream:
            for line in stream:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


@dataclass
class PodProcesses:
    """The processes of one running pod: supervisor, pod init (its child), apps (deeper)."""

    uuid: str
    supervisor: int
    init: List[int]
    apps: List[int]
    app_names: List[str]

    def all(self) -> List[int]:
        return [self.supervisor, *self.init, *self.apps]


def supervisor_of(data: Path, uuid: str) -> int:
    path = data / "pods" / "run" / uuid / "supervisor"
    try:
        pid = json.loads(path.read_text())["pid"]
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"pod {uuid}: cannot read the supervisor's pid from {path}: {exc}") from None
    if not isinstance(pid, int):
        raise BenchError(f"pod {uuid}: {path} holds no pid")
    return pid


def pod_processes(data: Path, uuids: Sequence[str], table: Dict[int, Tuple[int, str]]) -> List[PodProcesses]:
    pods = []
    for uuid in uuids:
        supervisor = supervisor_of(data, uuid)
        below = descendants(supervisor, table)
        pods.append(
            PodProcesses(
                uuid=uuid,
                supervisor=supervisor,
                init=[pid for pid, depth in below.items() if depth == 1],
                apps=[pid for pid, depth in below.items() if depth >= 2],
                app_names=[table[pid][1] for pid, depth in below.items() if depth >= 2],
            )
        )
    return pods


def wait_for_apps(data: Path, uuids: Sequence[str]) -> List[PodProcesses]:
    """The processes of every pod, once each pod's `sleep` runs (not a fork of init still on its way)."""
    deadline = time.monotonic() + APP_WAIT
    while True:
        pods = pod_processes(data, uuids, process_table())
        waiting = [pod.uuid for pod in pods if "sleep" not in pod.app_names]
        if not waiting:
            return pods
        if time.monotonic() > deadline:
            raise BenchError(f"{len(waiting)} pods have no running `sleep` after {APP_WAIT:.0f}s, e.g. {waiting[0]}")
        time.sleep(0.1)


@dataclass
class IdleResult:
    pods: int
    start_each: List[float]  # wall seconds of each `rocket run --detach`, in order
    pss_kib: Dict[str, int]  # role -> total PSS over all pods
    rss_kib: int
    processes: int
    stop_seconds: float
    gc_seconds: float
    leftovers: List[str]

    @property
    def start_seconds(self) -> float:
        return sum(self.start_each)

    def start_tenth(self, last: bool) -> float:
        """The median start time of the first (or last) tenth of the pods: does starting slow down?"""
        tenth = max(1, len(self.start_each) // 10)
        return statistics.median(self.start_each[-tenth:] if last else self.start_each[:tenth])

    @property
    def pss_total_kib(self) -> int:
        return sum(self.pss_kib.values())

    def mb_per_pod(self, kib: int) -> float:
        return kib * KIB / MB / self.pods


class IdlePods:
    """Start, measure, stop and gc --pods detached pods; cleans up whatever is left even on failure."""

    def __init__(self, rocket: Rocket, data: Path) -> None:
        self.rocket = rocket
        self.data = data
        self.uuids: List[str] = []
        self.known: Dict[int, Optional[int]] = {}  # every pod process seen: pid -> start time

    def start(self, count: int) -> List[float]:
        each: List[float] = []
        for number in range(count):
            argv = self.rocket.command(
                self.data,
                "run",
                "--detach",
                "--net=none",
                "--insecure-options=image",
                IMAGE_NAME,
                "--exec",
                "/bin/sleep",
                "--",
                "3600",
            )
            begin = time.perf_counter()
            done = subprocess.run(argv, env=self.rocket.env, capture_output=True, text=True, check=False)
            each.append(time.perf_counter() - begin)
            words = done.stdout.split()
            if done.returncode != 0 or not words:
                raise BenchError(
                    f"pod {number + 1}: {command_text(argv)} exited {done.returncode}:\n{done.stderr.strip()}"
                )
            self.uuids.append(words[-1])
        return each

    def timed(self, *words: str) -> float:
        argv = self.rocket.command(self.data, *words)
        begin = time.perf_counter()
        check_run(argv, what=f"rocket {words[0]}", env=self.rocket.env)
        return time.perf_counter() - begin

    def measure(self, count: int) -> IdleResult:
        log(f"starting {count} idle pods ...")
        start_each = self.start(count)
        pods = wait_for_apps(self.data, self.uuids)
        pss = {"supervisor": 0, "pod init": 0, "app": 0}
        rss = 0
        for pod in pods:
            for role, pids in (("supervisor", [pod.supervisor]), ("pod init", pod.init), ("app", pod.apps)):
                for pid in pids:
                    self.known[pid] = process_start_time(pid)
                    pid_pss, pid_rss = smaps_kib(pid)
                    pss[role] += pid_pss
                    rss += pid_rss
        log(f"stopping {count} pods ...")
        stop_seconds = self.timed("stop", *self.uuids)
        gc_seconds = self.timed("gc", "--grace-period=0s")
        return IdleResult(
            pods=count,
            start_each=start_each,
            pss_kib=pss,
            rss_kib=rss,
            processes=len(self.known),
            stop_seconds=stop_seconds,
            gc_seconds=gc_seconds,
            leftovers=self.leftovers(),
        )

    def live_processes(self) -> List[int]:
        return [
            pid for pid, started in self.known.items() if started is not None and process_start_time(pid) == started
        ]

    def leftovers(self) -> List[str]:
        found: List[str] = []
        deadline = time.monotonic() + EXIT_WAIT
        while self.live_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        live = self.live_processes()
        if live:
            found.append(f"{len(live)} processes still running (e.g. pid {live[0]})")
        for state in ("run", "exited-garbage", "garbage"):
            entries = sorted((self.data / "pods" / state).glob("*"))
            if entries:
                found.append(f"{len(entries)} entries in {self.data / 'pods' / state} (e.g. {entries[0].name})")
        cgroups = [path for uuid in self.uuids for path in glob.glob(f"/sys/fs/cgroup/*/rocket/{uuid}")]
        if cgroups:
            found.append(f"{len(cgroups)} cgroup folders (e.g. {cgroups[0]})")
        mounts = mounts_under(self.data)
        if mounts:
            found.append(f"{len(mounts)} mounts under {self.data} (e.g. {mounts[0]})")
        return found

    def clean_up(self) -> None:
        """After a failure: stop and gc whatever still runs, kill what is left, remove its cgroups.

        The data folder is this script's own, so every pod in it is ours, including one whose
        `rocket run --detach` was interrupted before it printed the UUID.
        """
        running = sorted(path.name for path in (self.data / "pods" / "run").glob("*"))
        self.uuids += [uuid for uuid in running if uuid not in self.uuids]
        for uuid in running:
            with contextlib.suppress(BenchError):
                check_run(
                    self.rocket.command(self.data, "stop", "--force", uuid), what="rocket stop", env=self.rocket.env
                )
        if self.uuids:
            with contextlib.suppress(BenchError):
                check_run(
                    self.rocket.command(self.data, "gc", "--grace-period=0s"), what="rocket gc", env=self.rocket.env
                )
        for pid in pods_still_known(self.data, self.uuids, self.known):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for uuid in self.uuids:
            for path in glob.glob(f"/sys/fs/cgroup/*/rocket/{uuid}"):
                remove_cgroup(Path(path))


def pods_still_known(data: Path, uuids: Sequence[str], known: Dict[int, Optional[int]]) -> List[int]:
    """Processes of our pods that are still alive: those recorded, and those below a live supervisor."""
    pids = [pid for pid, started in known.items() if started is not None and process_start_time(pid) == started]
    table = process_table()
    for uuid in uuids:
        with contextlib.suppress(BenchError):
            supervisor = supervisor_of(data, uuid)
            if supervisor in table and "python" in table[supervisor][1]:
                pids += [supervisor, *descendants(supervisor, table)]
    return sorted(set(pids))


def remove_cgroup(path: Path) -> None:
    """rmdir a cgroup and its children, deepest first (a cgroup folder holds only control files)."""
    for folder in sorted((p for p in [path, *path.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()


def mounts_under(path: Path) -> List[str]:
    """Mount points in this mount namespace whose line in mountinfo mentions `path`."""
    text = str(path)
    with open("/proc/self/mountinfo") as stream:
        return [line.split()[4] for line in stream if text in line]


# -- reporting -------------------------------------------------------------------------------------


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def start_table(result: StartResult, runs: int) -> str:
    lines = [
        f"== start: `/bin/true` in a busybox pod, image in the store; {runs} interleaved runs each ==",
        f"{'':<28}{'median':>11}{'p90':>11}{'min':>11}{'max':>11}{'peak RSS':>11}",
    ]
    for name in result.names:
        seconds = result.seconds(name)
        lines.append(
            f"{name:<28}{ms(result.median(name)):>11}{ms(result.p90(name)):>11}{ms(min(seconds)):>11}"
            f"{ms(max(seconds)):>11}{result.peak_rss_mb(name):>8.0f} MB"
        )
    for rocket in result.rockets():
        to_runc, to_podman = result.ratio(rocket, RUNC), result.ratio(rocket, PODMAN)
        lines += [
            f"ratio {rocket} / runc: {to_runc:.2f}x (goal <= {RUNC_GOAL:g}x: {verdict(to_runc <= RUNC_GOAL)})",
            f"ratio {rocket} / podman: {to_podman:.2f}x (goal <= {PODMAN_GOAL:g}x: "
            f"{verdict(to_podman <= PODMAN_GOAL)})",
        ]
    return "\n".join(lines)


def idle_table(idle: IdleResult, rocket_name: str) -> str:
    per_pod = idle.mb_per_pod
    roles = ", ".join(f"{role} {per_pod(kib):.2f}" for role, kib in idle.pss_kib.items())
    if idle.leftovers:
        left = "; ".join(idle.leftovers) + "  [MISS]"
    else:
        left = "nothing (no process, no pods/run entry, no cgroup, no mount)  [PASS]"
    rows = [
        (
            f"start {idle.pods} pods one by one",
            f"{idle.start_seconds:.2f} s",
            f"{idle.pods / idle.start_seconds:.1f} pods/s, {ms(idle.start_seconds / idle.pods)} per pod",
        ),
        (
            "  one pod's start",
            ms(statistics.median(idle.start_each)),
            f"median; p90 {ms(percentile(idle.start_each, 0.9))}, max {ms(max(idle.start_each))}; "
            f"first tenth {ms(idle.start_tenth(last=False))}, last tenth {ms(idle.start_tenth(last=True))}",
        ),
        (
            "memory: sum of PSS",
            f"{idle.pss_total_kib * KIB / MB:.1f} MB",
            f"{per_pod(idle.pss_total_kib):.2f} MB per pod ({roles}; {idle.processes} processes)",
        ),
        ("  (sum of RSS, for scale)", f"{idle.rss_kib * KIB / MB:.1f} MB", f"{per_pod(idle.rss_kib):.2f} MB per pod"),
        (
            f"rocket stop ({idle.pods} UUIDs)",
            f"{idle.stop_seconds:.2f} s",
            f"{ms(idle.stop_seconds / idle.pods)} per pod",
        ),
        ("rocket gc --grace-period=0s", f"{idle.gc_seconds:.2f} s", f"{ms(idle.gc_seconds / idle.pods)} per pod"),
    ]
    lines = [f"== idle pods: {idle.pods} x `/bin/sleep 3600`, started detached with {rocket_name} =="]
    lines += [f"{label:<30}{value:>10}   {detail}" for label, value, detail in rows]
    lines.append(f"left over: {left}")
    return "\n".join(lines)


def summary_lines(result: StartResult, idle: Optional[IdleResult]) -> List[str]:
    lines = []
    for rocket in result.rockets():
        to_runc, to_podman = result.ratio(rocket, RUNC), result.ratio(rocket, PODMAN)
        lines.append(
            f"start {rocket}: {ms(result.median(rocket))}, runc {ms(result.median(RUNC))}, "
            f"podman {ms(result.median(PODMAN))}; /runc {to_runc:.2f}x, /podman {to_podman:.2f}x"
            f"  [runc {verdict(to_runc <= RUNC_GOAL)}, podman {verdict(to_podman <= PODMAN_GOAL)}]"
        )
    if idle is not None:
        lines.append(
            f"idle: {idle.pods} pods, {idle.mb_per_pod(idle.pss_total_kib):.2f} MB PSS per pod, "
            f"start {idle.pods / idle.start_seconds:.1f} pods/s, stop {idle.stop_seconds:.2f} s, "
            f"gc {idle.gc_seconds:.2f} s  [left over: {'none, PASS' if not idle.leftovers else 'MISS'}]"
        )
    return lines


@dataclass
class Report:
    floor_rss_mb: float
    revision: str
    rockets: Dict[str, str]
    installed: List[str]
    podman_conf: Optional[str]
    start: StartResult
    idle: Optional[IdleResult]
    idle_rocket: str

    def as_json(self, args: argparse.Namespace) -> Dict[str, object]:
        start = self.start
        data: Dict[str, object] = {
            "runs": args.runs,
            "engine_revision": self.revision,
            "rocket": self.rockets,
            "installed_packages": self.installed,
            "podman_conf": self.podman_conf,
            "floor_rss_mb": self.floor_rss_mb,
            "start": {
                "median_seconds": {name: start.median(name) for name in start.names},
                "p90_seconds": {name: start.p90(name) for name in start.names},
                "seconds": {name: start.seconds(name) for name in start.names},
                "peak_rss_mb": {name: start.peak_rss_mb(name) for name in start.names},
                "ratios": {
                    rocket: {
                        "runc": start.ratio(rocket, RUNC),
                        "podman": start.ratio(rocket, PODMAN),
                        "runc_verdict": verdict(start.ratio(rocket, RUNC) <= RUNC_GOAL),
                        "podman_verdict": verdict(start.ratio(rocket, PODMAN) <= PODMAN_GOAL),
                    }
                    for rocket in start.rockets()
                },
                "goals": {"max_ratio_runc": RUNC_GOAL, "max_ratio_podman": PODMAN_GOAL},
            },
        }
        if self.idle is not None:
            idle = self.idle
            data["idle"] = {
                "rocket": self.idle_rocket,
                "pods": idle.pods,
                "start_seconds": idle.start_seconds,
                "pods_per_second": idle.pods / idle.start_seconds,
                "start_seconds_each": idle.start_each,
                "pss_mb_per_pod": idle.mb_per_pod(idle.pss_total_kib),
                "pss_mb_per_pod_by_role": {role: idle.mb_per_pod(kib) for role, kib in idle.pss_kib.items()},
                "rss_mb_per_pod": idle.mb_per_pod(idle.rss_kib),
                "processes": idle.processes,
                "stop_seconds": idle.stop_seconds,
                "gc_seconds": idle.gc_seconds,
                "leftovers": idle.leftovers,
            }
        return data


# -- the command line ------------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare `rocket run` of /bin/true in a busybox pod with `runc run` and `podman run`, "
        "then start, measure, stop and gc idle pods.",
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"scratch folder's parent ({DEFAULT_WORK})")
    parser.add_argument("--runs", "--repeat", type=int, default=20, help="timed runs of each contender (20)")
    parser.add_argument("--pods", type=int, default=100, help="idle pods to start; 0 skips that part (100)")
    parser.add_argument("--rocket", metavar="PATH", help=f"an installed rocket (default: {VENV_ROCKET} if present)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.pods < 0:
        parser.error("--pods must be 0 or more")
    return args


def check_machine() -> None:
    if os.geteuid() != 0:
        raise BenchError("run this as root: it installs packages, runs runc and podman, and starts pods")
    missing = [tool for tool in ("apt-get", "dpkg-query", "tar") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)}; this script expects Debian")


def remove_runc_containers() -> None:
    with contextlib.suppress(BenchError):
        for line in check_run(["runc", "list", "-q"], what="listing runc containers").split():
            if line.startswith(RUNC_PREFIX):
                with contextlib.suppress(BenchError):
                    check_run(["runc", "delete", "-f", line], what="removing a runc container")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP become KeyboardInterrupt, so the clean-up runs when the script is killed."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run(args: argparse.Namespace) -> Report:
    """Set up, measure the start, measure idle pods; remove all it made, whatever happens."""
    check_machine()
    installed_now = install_packages()
    podman_note = configure_podman()
    args.work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="start-", dir=args.work))
    data = scratch / "data"
    podman_imported = False
    pods: Optional[IdlePods] = None  # every pod in `data`, for the clean-up, whichever part made it
    try:
        floor, _stderr = run_measured(["true"], env=dict(os.environ), scratch=scratch)
        rockets = rocket_forms(args.rocket, scratch)
        first = next(iter(rockets.values()))
        pods = IdlePods(first, data)
        revision = engine_revision()
        log("building the busybox image, the runc bundles and the podman image ...")
        rootfs = make_rootfs(scratch / "image")
        aci = scratch / "busybox.aci"
        build_env = dict(first.env, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
        check_run(
            [*first.argv, "image", "build", scratch / "image", aci, "--compression", "none"],
            what="rocket image build",
            env=build_env,
        )
        check_run(first.command(data, "fetch", "--insecure-options=image", aci), what="rocket fetch", env=first.env)
        bundles = {
            program: make_runc_bundle(scratch / f"bundle-{Path(program).name}", rootfs, [program])
            for program in ("/bin/true", "/bin/false")
        }
        rootfs_tar = scratch / "rootfs.tar"
        check_run(["tar", "--numeric-owner", "-C", rootfs, "-cf", rootfs_tar, "."], what="packing the rootfs")
        podman_imported = True
        check_run(["podman", "import", rootfs_tar, PODMAN_IMAGE], what="podman import")
        contenders = Contenders(rockets=rockets, data=data, bundles=bundles, scratch=scratch)
        start = measure_start(contenders, runs=args.runs)
        idle: Optional[IdleResult] = None
        if args.pods:
            idle = pods.measure(args.pods)
        return Report(
            floor_rss_mb=floor.peak_rss_kib * KIB / MB,
            revision=revision if revision == engine_revision() else f"{revision}, CHANGED during the run",
            rockets={name: rocket.description for name, rocket in rockets.items()},
            installed=installed_now,
            podman_conf=podman_note,
            start=start,
            idle=idle,
            idle_rocket=next(iter(rockets)),
        )
    finally:
        # A second SIGTERM must not cut the clean-up short (^C still can).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if pods is not None:
            pods.clean_up()
        remove_runc_containers()
        if podman_imported:
            with contextlib.suppress(BenchError):
                remove_podman_containers()
            with contextlib.suppress(BenchError):
                check_run(["podman", "rmi", "-f", PODMAN_IMAGE], what="removing the podman image")
        for mount in sorted(mounts_under(scratch), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):  # other benchmarks' files, or files that are not ours: keep them
            args.work.rmdir()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark; exit 0 when it ran (whatever the verdicts), 1 when a step failed."""
    args = parse_args(argv)
    try:
        with terminate_as_interrupt():
            report = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted (what it made is removed)", file=sys.stderr)
        return 130
    print(f"(peak RSS figures cannot go below {report.floor_rss_mb:.0f} MB, the measuring launcher's own)")
    print(f"engine: {ENGINE_PARENT / 'rocket'} at {report.revision}")
    for name, description in report.rockets.items():
        print(f"{name}: {description}")
    print()
    print(start_table(report.start, args.runs), end="\n\n")
    if report.idle is not None:
        print(idle_table(report.idle, report.idle_rocket), end="\n\n")
    for line in summary_lines(report.start, report.idle):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
