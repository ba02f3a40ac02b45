#!/usr/bin/env python3
"""How long a no-change Ansible run takes: rocket's deploy-pods.yml against containers.podman, same pods.

The issue's benchmark: a second, no-change run of the repository's `deploy-pods.yml` converging N pods on
one host (the local machine, `ansible_connection=local`), against what a user would run instead: a play
whose one task is containers.podman's `podman_container`, looped over N equivalent containers. Both sides:

    rocket:  pod-<i>,   image bench.rocket.test/busybox, exec /bin/sleep 3600, environment INDEX=<i>, net [none]
    podman:  bench-<i>, image localhost/rocket-bench-ansible-busybox (the same rootfs, `podman import`ed),
             command /bin/sleep 3600, env INDEX=<i>, network none, state started

The goals: with 50 pods, rocket at least 5x faster than podman_container (the ratio of the medians,
podman / rocket; printed for every N, judged at 50 and above), and rocket's time nearly flat from 10 to 50
pods (its median at the largest --pods over its median at the smallest, printed; close to 1.0 is flat).

For each N of --pods (default 10,50), in that order, both sides are converged once, untimed (rocket's
role is exclusive, so it removes the pods of a larger earlier N; the script removes such podman containers
itself), and the script checks that exactly N pods and N containers run. Then --rounds (default 3) timed
rounds of one no-change run of each, rocket first in even rounds and podman first in odd ones. Every
timed run must end with a PLAY RECAP of one host with changed=0, failed=0 and unreachable=0; otherwise
the script stops, naming the tasks that changed, and keeps the run's whole output in --work as
ansible-idempotence-SIDE-N-TIME.log. Times are wall times of the whole `ansible-playbook` process
(start-up, inventory, playbook and collection loading, every task), as a user sees them; the machine is
shared, so only the ratios measured side by side in one run mean anything.

Both sides run the same `ansible-playbook`: that of a throwaway virtual environment (--venv, default
/var/tmp/rocket-bench/ansible-venv, made with Debian's /usr/bin/python3 and `pip install "ansible>=12,<13"`
if absent, reused if present), whose `ansible` package ships ansible-core and containers.podman. rocket's
collection is a snapshot of this checkout's working tree (the files git tracks or does not ignore),
copied at the start so that others' edits during the run can neither change what is measured nor make
the engine task report a change; it sits at `ansible_collections/appc/rocket` in a scratch folder that
ANSIBLE_COLLECTIONS_PATH names, and its own deploy-pods.yml and ansible.cfg run. The podman side gets a
two-line ansible.cfg (no retry files, interpreter /usr/bin/python3). The managed host's Python is
/usr/bin/python3 on both sides. rocket's host is this machine with every rocket folder (--dir, configs,
engine copies, launcher) in the scratch folder, no packages and no boot service, `rocket_insecure_options:
[image]` (the busybox image is unsigned) and the image fetched into its store beforehand.

Set-up, as root (see start.py, whose helpers this script uses): the Debian packages podman, runc and
busybox-static if missing, podman's /etc/containers/containers.conf for this machine (shared DESIGN.md,
"Machines here") if absent or lacking those settings, the virtual environment. At the end, even after a
failure, ^C or SIGTERM, it removes what it made: rocket's pods (`rocket stop --force`, `rocket gc
--grace-period=0s`, leftover processes and cgroups), the podman containers named bench-<number> and the
podman image, and the scratch folder. It keeps the virtual environment, the Debian packages and the podman
configuration (and the output of a failed run, named in the error).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple


def _load_start() -> ModuleType:
    """bench/start.py, for its set-up and clean-up helpers (packages, podman's configuration, rootfs, pods)."""
    spec = importlib.util.spec_from_file_location("rocket_bench_start", Path(__file__).resolve().parent / "start.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load bench/start.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


start = _load_start()
BenchError = start.BenchError
check_run = start.check_run
log = start.log

REPO = Path(__file__).resolve().parents[1]
ENGINE = Path("plugins", "module_utils")  # the engine's parent folder, in the checkout and in its snapshot
SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_WORK = Path("/var/tmp/rocket-bench")
DEFAULT_VENV = DEFAULT_WORK / "ansible-venv"
ANSIBLE_REQUIREMENT = "ansible>=12,<13"

IMAGE_NAME = start.IMAGE_NAME  # bench.rocket.test/busybox
PODMAN_IMAGE = "localhost/rocket-bench-ansible-busybox"
POD_PREFIX = "pod-"
CONTAINER_PREFIX = "bench-"
CONTAINER_NAME = re.compile(rf"^{re.escape(CONTAINER_PREFIX)}[0-9]+$")

ROCKET = "rocket deploy-pods.yml"
PODMAN = "podman_container loop"
SIDES = (ROCKET, PODMAN)
SPEED_GOAL = 5.0  # podman / rocket at least 5 ...
GOAL_PODS = 50  # ... with 50 pods (the figure); smaller numbers are shown without a verdict

PODMAN_PLAYBOOK = """\
---
# Written by rocket's bench/ansible_idempotence.py: the containers.podman side of the benchmark.
- name: Podman containers
  hosts: podman_hosts
  gather_facts: false
  tasks:
    - name: Converge the containers
      containers.podman.podman_container:
        name: "{{ item.name }}"
        image: "{{ bench_image }}"
        command: ["/bin/sleep", "3600"]
        env:
          INDEX: "{{ item.index }}"
        network: none
        state: started
      loop: "{{ bench_containers }}"
      loop_control:
        label: "{{ item.name }}"
"""
PODMAN_CONFIG = f"""\
# Written by rocket's bench/ansible_idempotence.py: the settings of the checkout's ansible.cfg that apply here.
[defaults]
retry_files_enabled = False
interpreter_python = {SYSTEM_PYTHON}
"""


# -- setting up ------------------------------------------------------------------------------------


def snapshot(repo: Path, target: Path) -> None:
    """Copy the checkout's working tree (tracked and untracked files that git does not ignore) to `target`.

    Others edit the checkout while the benchmark runs; an engine edited between two runs would make the
    engine task of the "no-change" run report a change (its copies on the host are content-addressed).
    """
    try:
        listed = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy all but the usual clutter
        clutter = shutil.ignore_patterns(".git", ".venv", ".build", ".collections", "__pycache__", "*_cache", "out")
        shutil.copytree(repo, target, symlinks=True, ignore=clutter)
        return
    for name in sorted({name.decode() for name in listed.split(b"\0") if name}):
        source = repo / name
        if not os.path.lexists(source):  # deleted in the working tree, not yet in the index
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name, follow_symlinks=False)


def site_packages(venv: Path) -> List[Path]:
    return sorted(venv.glob("lib/python3*/site-packages"))


def podman_collection(venv: Path) -> Optional[Path]:
    for folder in site_packages(venv):
        found = folder / "ansible_collections" / "containers" / "podman"
        if (found / "plugins" / "modules" / "podman_container.py").exists():
            return found
    return None


def ensure_venv(venv: Path) -> Optional[str]:
    """Make the throwaway virtual environment with the `ansible` package if it is not there; say what it did."""
    playbook = venv / "bin" / "ansible-playbook"
    if playbook.exists() and podman_collection(venv) is not None:
        return None
    note = f"installed {ANSIBLE_REQUIREMENT!r} into {venv}"
    log(f"{note} (once; later runs reuse it) ...")
    if not (venv / "bin" / "python").exists():
        check_run([SYSTEM_PYTHON, "-m", "venv", venv], what="making the ansible virtual environment")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    check_run(
        [venv / "bin" / "pip", "install", "--quiet", ANSIBLE_REQUIREMENT],
        what="pip install ansible",
        env=env,
        timeout=1800,
    )
    if not playbook.exists() or podman_collection(venv) is None:
        raise BenchError(f"{venv}: pip installed {ANSIBLE_REQUIREMENT!r} but it has no ansible-playbook or no "
                         "containers.podman; remove that folder and run again")  # fmt: skip
    return note


def versions(venv: Path) -> Dict[str, str]:
    """The versions that the figures depend on, for the report."""
    code = "import importlib.metadata as m; print(m.version('ansible'), m.version('ansible-core'))"
    ansible, core = check_run([venv / "bin" / "python", "-c", code], what="reading the ansible versions").split()
    collection = podman_collection(venv)
    manifest = json.loads((collection / "MANIFEST.json").read_text()) if collection else {}
    podman = check_run(["podman", "--version"], what="podman --version").strip().split()[-1]
    return {
        "ansible": ansible,
        "ansible-core": core,
        "containers.podman": str(manifest.get("collection_info", {}).get("version", "?")),
        "podman": podman,
        "python (controller)": check_run(
            [venv / "bin" / "python", "-c", "import platform; print(platform.python_version())"], what="python"
        ).strip(),
    }


@dataclass
class Host:
    """The scratch folder: rocket's host folders, the collection link, both playbooks, inventories per N."""

    scratch: Path
    venv: Path

    @property
    def collection(self) -> Path:
        """The snapshot of the checkout that rocket's side runs: its playbook, ansible.cfg, roles and engine."""
        return self.scratch / "collections" / "ansible_collections" / "appc" / "rocket"

    @property
    def data(self) -> Path:
        return self.scratch / "host" / "var-lib-rocket"

    def rocket_vars(self) -> Dict[str, object]:
        base = self.scratch / "host"
        return {
            "rocket_dir": str(self.data),
            "rocket_local_config": str(base / "etc-rocket"),
            "rocket_system_config": str(base / "usr-lib-rocket"),
            "rocket_engine_dir": str(base / "engine"),
            "rocket_launcher": str(base / "rocket"),
            "rocket_install_packages": False,
            "rocket_boot_service": False,
            "rocket_insecure_options": ["image"],
        }

    def rocket_cli(self, *words: object) -> List[str]:
        return [SYSTEM_PYTHON, "-m", "rocket", "--dir", str(self.data), *[str(word) for word in words]]

    @property
    def rocket_env(self) -> Dict[str, str]:
        env = dict(
            os.environ, PYTHONPATH=str(self.collection / ENGINE), PYTHONPYCACHEPREFIX=str(self.scratch / "pycache")
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def prepare(self) -> None:
        snapshot(REPO, self.collection)
        (self.scratch / "podman.yml").write_text(PODMAN_PLAYBOOK)
        (self.scratch / "podman.cfg").write_text(PODMAN_CONFIG)

    def inventory(self, side: str, pods: int) -> Path:
        path = self.scratch / f"inventory-{'rocket' if side == ROCKET else 'podman'}-{pods}.json"
        if path.exists():
            return path
        host = {"ansible_connection": "local", "ansible_python_interpreter": SYSTEM_PYTHON}
        if side == ROCKET:
            specs = [
                {
                    "name": f"{POD_PREFIX}{index}",
                    "net": ["none"],
                    "apps": [
                        {"image": IMAGE_NAME, "exec": ["/bin/sleep", "3600"], "environment": {"INDEX": str(index)}}
                    ],
                }
                for index in range(1, pods + 1)
            ]
            data = {"rocket_hosts": {"hosts": {"bench": {**host, **self.rocket_vars(), "rocket_pods": specs}}}}
        else:
            items = [{"name": f"{CONTAINER_PREFIX}{index}", "index": str(index)} for index in range(1, pods + 1)]
            data = {
                "podman_hosts": {"hosts": {"bench": {**host, "bench_image": PODMAN_IMAGE, "bench_containers": items}}}
            }
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    def command(self, side: str, pods: int) -> Tuple[List[str], Dict[str, str], Path]:
        """argv, environment and working folder of one ansible-playbook run of `side` with `pods` pods."""
        short = "rocket" if side == ROCKET else "podman"
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(self.collection / "ansible.cfg" if side == ROCKET else self.scratch / "podman.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(self.scratch / "collections"),
            ANSIBLE_HOME=str(self.scratch / f"ansible-home-{short}"),
            ANSIBLE_LOCAL_TEMP=str(self.scratch / f"ansible-tmp-{short}"),
            ANSIBLE_NOCOLOR="1",
        )
        # Python caches compiled modules as for any installed Ansible (a shell's PYTHONDONTWRITEBYTECODE
        # would make every run compile ansible-core again, on both sides).
        for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "ANSIBLE_FORCE_COLOR", "ANSIBLE_STDOUT_CALLBACK"):
            env.pop(name, None)
        playbook = self.collection / "deploy-pods.yml" if side == ROCKET else self.scratch / "podman.yml"
        argv = [str(self.venv / "bin" / "ansible-playbook"), "-i", str(self.inventory(side, pods)), str(playbook)]
        return argv, env, (self.collection if side == ROCKET else self.scratch)


# -- one ansible-playbook run ----------------------------------------------------------------------


RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def play_recap(output: str) -> Dict[str, Dict[str, int]]:
    """host -> {ok, changed, unreachable, failed, skipped, rescued, ignored} from the PLAY RECAP."""
    recap: Dict[str, Dict[str, int]] = {}
    lines = output.splitlines()
    starts = [number for number, line in enumerate(lines) if line.startswith("PLAY RECAP")]
    if not starts:
        return recap
    for line in lines[starts[-1] + 1 :]:
        match = RECAP_LINE.match(line.strip())
        if match:
            recap[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


@dataclass(frozen=True)
class PlayRun:
    seconds: float
    recap: Dict[str, int]


def tail(text: str, lines: int = 40) -> str:
    return "\n  ".join(text.strip().splitlines()[-lines:])


def run_play(host: Host, side: str, pods: int, *, expect_no_change: bool) -> PlayRun:
    """One ansible-playbook run, timed; raise BenchError unless it ran cleanly (and changed nothing if asked)."""
    argv, env, cwd = host.command(side, pods)
    began = time.perf_counter()
    try:
        done = subprocess.run(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=3600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{side} with {pods} pods: {start.command_text(argv)}: {exc}") from None
    seconds = time.perf_counter() - began
    output = done.stdout + done.stderr
    what = f"{side} with {pods} pods ({start.command_text(argv)})"
    recap = play_recap(done.stdout)
    counts = next(iter(recap.values())) if len(recap) == 1 else {}
    if done.returncode != 0 or len(recap) != 1:
        problem = f"exited {done.returncode} with a PLAY RECAP of {len(recap)} hosts"
    elif counts.get("failed", 0) or counts.get("unreachable", 0):
        problem = f"failed: {counts}"
    elif expect_no_change and counts.get("changed", -1) != 0:
        problem = f"is not idempotent: its no-change run reports changed={counts.get('changed')}"
    else:
        return PlayRun(seconds=seconds, recap=counts)
    log_file = keep_output(host, side, pods, output)
    raise BenchError(f"{what} {problem}; the whole output is in {log_file}:\n  {changed_tasks(output) or tail(output)}")


def changed_tasks(output: str) -> str:
    """Each task that reported a change, with its changed lines (default verbosity names the item, if any),
    and the messages of debug tasks (the pods role reports each changed pod with its reason)."""
    found: List[str] = []
    task = ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line.rstrip(" *")
        elif line.startswith("changed:") or line.strip().startswith('"msg":'):
            if task:
                found.append(task)
                task = ""
            found.append(f"  {line}")
    return "\n  ".join(found[:40])


def keep_output(host: Host, side: str, pods: int, output: str) -> Path:
    """The output of a failed run, kept beside the scratch folder (which the clean-up removes)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = host.scratch.parent / f"ansible-idempotence-{'rocket' if side == ROCKET else 'podman'}-{pods}-{stamp}.log"
    path.write_text(output)
    return path


# -- checking what runs ----------------------------------------------------------------------------


def rocket_running(host: Host) -> int:
    listing = check_run(host.rocket_cli("list", "--format=json"), what="rocket list", env=host.rocket_env)
    return sum(1 for pod in json.loads(listing or "[]") if pod.get("state") == "running")


def podman_containers(running_only: bool = False) -> List[str]:
    argv = ["podman", "ps", "--format", "{{.Names}}"] + ([] if running_only else ["-a"])
    names = check_run(argv, what="listing podman containers").split()
    return [name for name in names if CONTAINER_NAME.match(name)]


def remove_podman_containers(names: Sequence[str]) -> None:
    if names:
        check_run(["podman", "rm", "-f", "-t", "0", *names], what="removing podman containers", timeout=1200)


def converge(host: Host, pods: int) -> Dict[str, PlayRun]:
    """Untimed: bring both sides to `pods` pods and containers, and check that exactly that many run."""
    extra = [name for name in podman_containers() if int(name[len(CONTAINER_PREFIX) :]) > pods]
    remove_podman_containers(extra)
    runs = {}
    for side in SIDES:
        log(f"converging {side} with {pods} pods (untimed) ...")
        runs[side] = run_play(host, side, pods, expect_no_change=False)
    counts = {ROCKET: rocket_running(host), PODMAN: len(podman_containers(running_only=True))}
    wrong = {side: count for side, count in counts.items() if count != pods}
    if wrong:
        raise BenchError(f"after converging {pods} pods, running: {counts}; expected {pods} on each side")
    return runs


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    """The timed no-change runs of both sides with one number of pods."""

    pods: int
    runs: Dict[str, List[PlayRun]] = field(default_factory=lambda: {side: [] for side in SIDES})
    converge_seconds: Dict[str, float] = field(default_factory=dict)

    def seconds(self, side: str) -> List[float]:
        return [run.seconds for run in self.runs[side]]

    def median(self, side: str) -> float:
        return statistics.median(self.seconds(side))

    def speedup(self) -> float:
        """podman / rocket: how many times faster rocket is."""
        return self.median(PODMAN) / self.median(ROCKET)

    def verdict(self) -> Optional[str]:
        """PASS or MISS against the speed goal, which is set for GOAL_PODS pods (None below that)."""
        return verdict(self.speedup() >= SPEED_GOAL) if self.pods >= GOAL_PODS else None

    def goal_text(self) -> str:
        if self.pods < GOAL_PODS:
            return f"the goal >= {SPEED_GOAL:g}x is for {GOAL_PODS} pods"
        return f"goal >= {SPEED_GOAL:g}x: {self.verdict()}"

    def recap(self, side: str) -> Dict[str, int]:
        return self.runs[side][-1].recap


def measure(host: Host, pods: int, rounds: int) -> SizeResult:
    result = SizeResult(pods=pods)
    converged = converge(host, pods)
    result.converge_seconds = {side: run.seconds for side, run in converged.items()}
    for number in range(rounds):
        order = SIDES if number % 2 == 0 else tuple(reversed(SIDES))
        log(f"{pods} pods: round {number + 1}/{rounds} ({order[0]} first) ...")
        for side in order:
            os.sync()
            run = run_play(host, side, pods, expect_no_change=True)
            result.runs[side].append(run)
            log(f"  {side}: {run.seconds:.2f} s, changed=0")
    return result


# -- clean-up --------------------------------------------------------------------------------------


def clean_up(host: Host, podman_imported: bool) -> None:
    """Remove the pods, the containers, the podman image and the scratch folder; keep going past errors."""
    data, env = host.data, host.rocket_env
    if data.exists():
        running = sorted(path.name for path in (data / "pods" / "run").glob("*"))
        if running:
            with contextlib.suppress(BenchError):
                check_run(host.rocket_cli("stop", "--force", *running), what="rocket stop", env=env, timeout=600)
        with contextlib.suppress(BenchError):
            check_run(host.rocket_cli("gc", "--grace-period=0s"), what="rocket gc", env=env, timeout=600)
        # start.py's last resort: stop and gc what is still there one by one, kill what is left, rmdir cgroups
        pods = start.IdlePods(start.Rocket(host.rocket_cli()[:3], env, "python3 -m rocket"), data)
        pods.uuids = running
        pods.clean_up()
    with contextlib.suppress(BenchError):
        remove_podman_containers(podman_containers())
    if podman_imported:
        with contextlib.suppress(BenchError):
            check_run(["podman", "rmi", "-f", PODMAN_IMAGE], what="removing the podman image")
    for mount in sorted(start.mounts_under(host.scratch), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(host.scratch, ignore_errors=True)


# -- the whole run ---------------------------------------------------------------------------------


@dataclass
class Report:
    sizes: List[SizeResult]
    versions: Dict[str, str]
    revision: str
    notes: List[str]
    wall_seconds: float
    date: str

    def flatness(self, side: str) -> Optional[float]:
        """The median at the largest number of pods over that at the smallest."""
        if len(self.sizes) < 2:
            return None
        ordered = sorted(self.sizes, key=lambda size: size.pods)
        return ordered[-1].median(side) / ordered[0].median(side)

    def per_extra_pod(self, side: str) -> Optional[float]:
        if len(self.sizes) < 2:
            return None
        ordered = sorted(self.sizes, key=lambda size: size.pods)
        low, high = ordered[0], ordered[-1]
        return (high.median(side) - low.median(side)) / (high.pods - low.pods)

    def span(self) -> Tuple[int, int]:
        pods = sorted(size.pods for size in self.sizes)
        return pods[0], pods[-1]

    def as_json(self, args: argparse.Namespace) -> Dict[str, object]:
        return {
            "date": self.date,
            "rounds": args.rounds,
            "engine_revision": self.revision,
            "versions": self.versions,
            "notes": self.notes,
            "wall_seconds": self.wall_seconds,
            "goal_min_speedup": SPEED_GOAL,
            "goal_pods": GOAL_PODS,
            "sizes": [
                {
                    "pods": size.pods,
                    "seconds": {side: size.seconds(side) for side in SIDES},
                    "median_seconds": {side: size.median(side) for side in SIDES},
                    "converge_seconds": size.converge_seconds,
                    "recap": {side: size.recap(side) for side in SIDES},
                    "speedup": size.speedup(),
                    "verdict": size.verdict(),
                }
                for size in self.sizes
            ],
            "flatness": {side: self.flatness(side) for side in SIDES},
            "seconds_per_extra_pod": {side: self.per_extra_pod(side) for side in SIDES},
        }


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time a no-change run of deploy-pods.yml with N pods against containers.podman's "
        "podman_container looped over N equivalent containers, side by side.",
    )
    parser.add_argument("--pods", default="10,50", help="numbers of pods, comma-separated, in order (10,50)")
    parser.add_argument("--rounds", type=int, default=3, help="timed no-change runs of each side per number (3)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"scratch folder's parent ({DEFAULT_WORK})")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"the ansible virtual env ({DEFAULT_VENV})")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    try:
        args.pods = [int(word) for word in args.pods.split(",") if word.strip()]
    except ValueError:
        parser.error(f"--pods {args.pods!r}: give whole numbers separated by commas, e.g. 10,50")
    if not args.pods or any(pods < 1 for pods in args.pods) or len(set(args.pods)) != len(args.pods):
        parser.error("--pods: give one or more different numbers, each at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run(args: argparse.Namespace) -> Report:
    """Set up, measure every number of pods; remove all it made, whatever happens."""
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    start.check_machine()
    packages = start.install_packages()
    notes = [f"installed Debian packages: {' '.join(packages)}"] if packages else []
    notes += [note for note in (start.configure_podman(), ensure_venv(args.venv)) if note]
    found = versions(args.venv)
    args.work.mkdir(parents=True, exist_ok=True)
    host = Host(scratch=Path(tempfile.mkdtemp(prefix="ansible-idempotence-", dir=args.work)), venv=args.venv)
    podman_imported = False
    try:
        revision = start.engine_revision()  # of the checkout, just before its snapshot
        host.prepare()
        log("building the busybox image, fetching it into rocket's store, importing it into podman ...")
        rootfs = start.make_rootfs(host.scratch / "image")
        aci = host.scratch / "busybox.aci"
        env = dict(host.rocket_env, SOURCE_DATE_EPOCH=start.SOURCE_DATE_EPOCH)
        build = host.rocket_cli("image", "build", host.scratch / "image", aci, "--compression", "none")
        check_run(build, what="rocket image build", env=env)
        fetch = host.rocket_cli("--insecure-options=image", "fetch", aci)
        check_run(fetch, what="rocket fetch", env=host.rocket_env)
        rootfs_tar = host.scratch / "rootfs.tar"
        check_run(["tar", "--numeric-owner", "-C", rootfs, "-cf", rootfs_tar, "."], what="packing the rootfs")
        podman_imported = True
        check_run(["podman", "import", rootfs_tar, PODMAN_IMAGE], what="podman import")
        sizes = [measure(host, pods, args.rounds) for pods in args.pods]
        if start.engine_revision() != revision:
            revision += " (the checkout's engine changed since; this run used the snapshot throughout)"
        return Report(
            sizes=sizes,
            versions=found,
            revision=revision,
            notes=notes,
            wall_seconds=0.0,  # main() sets it, clean-up included
            date=date,
        )
    finally:
        # A second SIGTERM must not cut the clean-up short (^C still can).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        log("cleaning up ...")
        clean_up(host, podman_imported)
        with contextlib.suppress(OSError):  # other benchmarks' files, the venv: keep them
            args.work.rmdir()


def size_table(size: SizeResult, rounds: int) -> str:
    lines = [
        f"== no-change run, {size.pods} pods / containers on one host; {rounds} interleaved rounds ==",
        f"{'':<26}{'median':>9}{'min':>9}{'max':>9}{'converge':>10}   recap of a no-change run",
    ]
    for side in SIDES:
        seconds = size.seconds(side)
        recap = " ".join(f"{key}={value}" for key, value in size.recap(side).items() if key in ("ok", "changed"))
        skipped = size.recap(side).get("skipped", 0)
        lines.append(
            f"{side:<26}{size.median(side):>7.2f} s{min(seconds):>7.2f} s{max(seconds):>7.2f} s"
            f"{size.converge_seconds[side]:>8.2f} s   {recap} skipped={skipped}"
        )
    speedup = size.speedup()
    lines.append(f"rocket is {speedup:.2f} times faster (podman / rocket; {size.goal_text()})")
    return "\n".join(lines)


def summary_lines(report: Report) -> List[str]:
    lines = [
        f"{size.pods} pods: rocket {size.median(ROCKET):.2f} s, podman {size.median(PODMAN):.2f} s, "
        f"rocket {size.speedup():.2f}x faster  [{size.goal_text()}]"
        for size in report.sizes
    ]
    flat = report.flatness(ROCKET)
    if flat is not None:
        low, high = report.span()
        rocket_step, podman_step = report.per_extra_pod(ROCKET), report.per_extra_pod(PODMAN)
        lines.append(
            f"flatness from {low} to {high} pods (median at {high} / median at {low}; nearly flat is close to 1): "
            f"rocket {flat:.2f}x, podman {report.flatness(PODMAN):.2f}x"
        )
        lines.append(
            f"each extra pod adds: rocket {(rocket_step or 0) * 1000:.0f} ms, podman {(podman_step or 0) * 1000:.0f} ms"
        )
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark; exit 0 when it ran (whatever the verdicts), 1 when a step failed."""
    args = parse_args(argv)
    began = time.monotonic()
    try:
        with start.terminate_as_interrupt():
            report = run(args)
        report.wall_seconds = time.monotonic() - began
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted (what it made is removed)", file=sys.stderr)
        return 130
    for note in report.notes:
        print(note)
    print(f"date: {report.date}")
    print(f"collection and engine: a snapshot of {REPO} at {report.revision}")
    print("versions: " + ", ".join(f"{name} {version}" for name, version in report.versions.items()))
    print(f"ansible-playbook (both sides): {args.venv / 'bin' / 'ansible-playbook'}")
    print()
    for size in report.sizes:
        print(size_table(size, args.rounds), end="\n\n")
    for line in summary_lines(report):
        print(line)
    print(f"wall time of the whole benchmark (set-up and clean-up included): {report.wall_seconds:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report.as_json(args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
