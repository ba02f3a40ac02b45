"""cgroup_warmup: the thread that keeps the kernel's first cgroup move of a pod start from waiting."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from rocket import cgroup_warmup
from rocket.cgroup_warmup import own_thread_list

ENGINE_PARENT = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"

HYBRID_MOUNTS = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
36 31 0:33 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
HYBRID_GROUPS = "9:name=systemd:/\n4:memory:/process_api/6794\n1:cpu:/\n0::/user.slice/session-1.scope\n"


def test_the_unified_hierarchy_is_preferred_and_its_thread_list_named() -> None:
    expected = "/sys/fs/cgroup/unified/user.slice/session-1.scope/cgroup.threads"
    assert own_thread_list(HYBRID_MOUNTS, HYBRID_GROUPS) == expected


def test_a_pure_v2_host() -> None:
    mounts = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    expected = "/sys/fs/cgroup/system.slice/web.service/cgroup.threads"
    assert own_thread_list(mounts, "0::/system.slice/web.service\n") == expected
    assert own_thread_list(mounts, "0::/\n") == "/sys/fs/cgroup/cgroup.threads"


def test_without_v2_the_first_matching_v1_hierarchy_and_its_tasks() -> None:
    mounts = "\n".join(line for line in HYBRID_MOUNTS.splitlines() if "cgroup2" not in line)
    groups = "9:name=systemd:/x\n4:memory:/process_api/6794\n1:cpu:/\n"
    assert own_thread_list(mounts, groups) == "/sys/fs/cgroup/cpu/tasks"
    # Controllers mounted together (cpu,cpuacct) match the line that names them together.
    joint = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    assert own_thread_list(joint, "2:cpu,cpuacct:/pods\n") == "/sys/fs/cgroup/cpu,cpuacct/pods/tasks"
    assert own_thread_list(joint, "2:memory:/pods\n") is None


def test_a_hierarchy_mounted_at_a_subtree_counts_only_around_this_process() -> None:
    """A container sees its own cgroup as the mount's root; a process outside that subtree has no file there."""
    mounts = "29 23 0:26 /docker/abc /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
    assert own_thread_list(mounts, "0::/docker/abc\n") == "/sys/fs/cgroup/cgroup.threads"
    assert own_thread_list(mounts, "0::/docker/abc/app\n") == "/sys/fs/cgroup/app/cgroup.threads"
    assert own_thread_list(mounts, "0::/docker/abcd\n") is None
    assert own_thread_list(mounts, "0::/other\n") is None


def test_escaped_mount_points_and_no_cgroup_file_system() -> None:
    mounts = "29 23 0:26 / /mnt/cg\\040two rw,relatime - cgroup2 cgroup2 rw\n"
    assert own_thread_list(mounts, "0::/a\n") == "/mnt/cg two/a/cgroup.threads"
    assert own_thread_list("22 1 0:21 / /proc rw - proc proc rw\n", "0::/\n") is None


needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0
    or own_thread_list(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text()) is None,
    reason="needs root and a cgroup file system",
)


def sleeping_threads() -> List[str]:
    """This process's threads that sleep in time.sleep (the warm-up thread between its writes)."""
    found = []
    for tid in os.listdir("/proc/self/task"):
        try:
            if "nanosleep" in Path(f"/proc/self/task/{tid}/wchan").read_text():
                found.append(tid)
        except OSError:
            continue
    return found


def wait_until(predicate, timeout: float = 2.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@needs_cgroups
def test_the_thread_moves_nothing_and_ends_when_stopped() -> None:
    before = Path("/proc/self/cgroup").read_text()
    cgroup_warmup.start()
    try:
        assert cgroup_warmup.running()
        assert wait_until(lambda: len(sleeping_threads()) == 1)
        time.sleep(0.05)  # a few dozen writes
        assert Path("/proc/self/cgroup").read_text() == before
        for tid in os.listdir("/proc/self/task"):
            assert Path(f"/proc/self/task/{tid}/cgroup").read_text() == before
    finally:
        cgroup_warmup.stop()
    assert not cgroup_warmup.running()
    assert wait_until(lambda: sleeping_threads() == [], timeout=0.5)


@needs_cgroups
def test_stop_after_keeps_it_running_that_long_and_start_then_does_not_start_a_second_one() -> None:
    cgroup_warmup.start()
    try:
        cgroup_warmup.stop(after=0.3)
        cgroup_warmup.start()  # still running: no second thread
        seen = []
        for _sample in range(20):
            seen.append(len(sleeping_threads()))
            time.sleep(0.005)
        assert cgroup_warmup.running()
        assert max(seen) == 1, seen
        assert wait_until(lambda: sleeping_threads() == [], timeout=1.0)
    finally:
        cgroup_warmup.stop()


def timed_move(procs: Path) -> float:
    """Seconds one cgroup move of a fresh child process takes."""
    child = subprocess.Popen(["sleep", "5"])
    try:
        fd = os.open(procs, os.O_WRONLY)
        try:
            started = time.perf_counter()
            os.write(fd, str(child.pid).encode())
            return time.perf_counter() - started
        finally:
            os.close(fd)
    finally:
        child.kill()
        child.wait()


@needs_cgroups
def test_a_move_while_it_runs_does_not_wait_for_the_grace_period() -> None:
    """The point of it: a move with the thread running takes well under half of a cold one."""
    threads = own_thread_list(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())
    assert threads is not None
    folder = Path(threads).parent / f"rocket-warmup-test-{os.getpid()}"
    folder.mkdir()
    cold: List[float] = []
    warm: List[float] = []
    try:
        for _round in range(5):
            time.sleep(0.2)  # several grace periods without a move: the next one waits
            cold.append(timed_move(folder / "cgroup.procs"))
            time.sleep(0.2)
            cgroup_warmup.start()
            try:
                time.sleep(0.05)  # the thread's first write has waited its grace period
                warm.append(timed_move(folder / "cgroup.procs"))
            finally:
                cgroup_warmup.stop()
    finally:
        wait_until(lambda: (folder / "cgroup.procs").read_text() == "", timeout=2.0)
        folder.rmdir()
    if statistics.median(cold) < 0.001:
        pytest.skip(f"cold cgroup moves take {statistics.median(cold) * 1000:.2f} ms here: nothing to warm up")
    assert statistics.median(warm) < statistics.median(cold) / 2, (cold, warm)


ENTRY_PROBE = """
import os, sys
sys.path.insert(0, sys.argv[1])
from rocket import cgroup_warmup
from rocket.cli import main
started = []
cgroup_warmup.start = lambda: started.append(True)
main.main = lambda: None
from rocket.cli import entry
for argv in (["version"], ["--dir", "/d", "run", "x"], ["run-prepared", "u"], ["enter", "u"], ["list"]):
    sys.argv = ["rocket", *argv]
    entry.main()
    print(argv[-2] if len(argv) > 1 else argv[0], bool(started))
    started.clear()
"""


def test_the_commands_that_move_processes_start_it_before_importing_the_engine() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", ENTRY_PROBE, str(ENGINE_PARENT)], capture_output=True, text=True, check=False
    )
    expected = ["version False", "run True", "run-prepared True", "enter True", "list False"]
    assert done.stdout.split("\n")[:5] == expected, done.stdout + done.stderr
