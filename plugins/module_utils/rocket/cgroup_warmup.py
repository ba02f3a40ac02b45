"""Keep the kernel's cgroup moves fast while a pod starts.

Moving a process between cgroups takes the kernel's cgroup_threadgroup_rwsem for writing, and the first
writer after a quiet spell waits for an RCU grace period (rcu_sync_enter: 5-20 ms on these machines)
before it moves anything. A writer that comes while the last one's grace period has not run out yet
does not wait. A pod start used to pay that wait on its critical path, in the first move of init into
the pod's cgroups (cgroups.PodCgroup.adopt), as runc pays it for its container's init.

start() pays it off that path, while the interpreter still imports the engine: a thread moves itself
into the cgroup it is in already, by writing its own thread ID into that cgroup's thread list
(`cgroup.threads` on v2, `tasks` on v1). Nothing changes, but the kernel takes the lock. It does so
again every PERIOD, so the kernel keeps the passed state until stop() or LIFETIME; each later write costs
~50 µs in the kernel. Meanwhile every fork and exit on the host takes the lock's slower read path, as it
does for a moment after any cgroup move (the favordynmods mount option makes that permanent); a pod
start keeps it so for a fraction of a second.

The thread only ever names itself, never the process: if the process is moved meanwhile (the supervisor
moves itself into a delegated leaf under systemd, cgroups.delegated_parent), v2 refuses to move a lone
thread to another domain and the thread ends; v1 would move just this thread back, for the moments it
has left. Everything is best effort: where the write is refused (no cgroupfs, no privilege), the thread
ends and the first move waits as before. Only os, _thread and time are imported: cli/entry.py starts
this before the engine's imports.

The supervisor forks the pod's init while the thread runs (it stops it 0.1 s after moving init), which
Python 3.12+ notes with a DeprecationWarning (ignored by default): the thread holds no lock the child
could need, only ever being in open, write, close or sleep.
"""

from __future__ import annotations

import _thread
import os
import time

from .mountinfo import parse_mountinfo

PERIOD = 0.002  # well under a grace period, so the kernel never sees a quiet one in between
LIFETIME = 2.0  # an upper bound: a detached supervisor on a loaded host may take this long to adopt init
# How long callers keep it going after the first move: the moves that follow it (the apps' joins after
# init's, an entered process's after its fork) come within milliseconds; generous.
AFTER_FIRST_MOVE = 0.1

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before the engine's imports
if TYPE_CHECKING:
    from typing import List, Optional, Set, Tuple

_deadline: List[float] = [0.0]  # the running thread's deadline (time.monotonic); each thread has its own


def start() -> None:
    """Start the thread, unless one runs already (it then goes on to its own deadline)."""
    global _deadline
    if time.monotonic() < _deadline[0]:
        return
    _deadline = [time.monotonic() + LIFETIME]
    _thread.start_new_thread(_keep_passed, (_deadline,))


def stop(after: float = 0.0) -> None:
    """End the thread `after` seconds from now (or at its deadline, whichever comes first).

    Moves within one grace period of the last write still do not wait, so a caller that stops it right
    after the pod's first move leaves the apps' own moves, a few milliseconds later, fast as well.
    """
    _deadline[0] = min(_deadline[0], time.monotonic() + after)


def running() -> bool:
    """Whether a thread is meant to be running now (it ends within PERIOD of its deadline)."""
    return time.monotonic() < _deadline[0]


def own_thread_list(mountinfo: str, cgroup: str) -> Optional[str]:
    """The thread list of the cgroup this process is in, in one hierarchy: the unified (v2) one's
    cgroup.threads if mounted, else the first v1 one's tasks; from the texts of /proc/self/mountinfo and
    /proc/self/cgroup.

    A hierarchy mounted at a subtree (a container's view) counts only if this process's cgroup lies
    in that subtree.
    """
    unified: Optional[str] = None  # this process's path in the unified hierarchy
    v1: List[Tuple[Set[str], str]] = []  # (controllers, path) in each v1 one
    for line in cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0":
            unified = path
        else:
            v1.append((set(controllers.split(",")), path))
    found: Optional[str] = None
    for mount in parse_mountinfo(mountinfo):
        own: Optional[str] = None
        if mount.fstype == "cgroup2":
            own = unified
        elif mount.fstype == "cgroup":
            # A v1 mount's options name its controllers (or name=...), each bound to one hierarchy only.
            options = set(mount.super_options)
            own = next((path for controllers, path in v1 if controllers <= options), None)
        root = mount.root
        if own is None or not (root == "/" or own == root or own.startswith(root + "/")):
            continue
        folder = mount.mount_point + (own if root == "/" else own[len(root) :]).rstrip("/")
        if mount.fstype == "cgroup2":
            return folder + "/cgroup.threads"
        found = found or folder + "/tasks"
    return found


def _keep_passed(deadline: List[float]) -> None:
    try:
        with open("/proc/self/mountinfo") as mounts, open("/proc/self/cgroup") as groups:
            path = own_thread_list(mounts.read(), groups.read())
        if path is None:
            return
        me = str(_thread.get_native_id()).encode()
        while time.monotonic() < deadline[0]:
            # Opened for each write: no descriptor of a host cgroup file is open when the pod's init forks.
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)
            time.sleep(PERIOD)
    except (OSError, ValueError):
        return  # best effort (module docstring): the pod's first move then waits itself
