"""`rocket enter`: run a command inside a running app, under exactly the app's restrictions.

rkt's CVE-2019-10144/10145/10147 came from an `enter` that joined the namespaces but not the app's
capability bounding set, seccomp filter and cgroup. Here the entered process joins the app's cgroups
first (while the host's cgroup file system is still reachable), then the app process's IPC, UTS, network,
cgroup, PID and mount namespaces, and finally goes through launch.confine, the very function that
confined the app, before exec. Its environment is the app's own (read from /proc/PID/environ).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

from .. import cgroup_warmup
from ..errors import PodStateError
from . import linux
from .launch import Launch, exec_app

NAMESPACES = (
    ("ipc", linux.CLONE_NEWIPC),
    ("uts", linux.CLONE_NEWUTS),
    ("net", linux.CLONE_NEWNET),
    ("cgroup", linux.CLONE_NEWCGROUP),
    ("pid", linux.CLONE_NEWPID),
    ("mnt", linux.CLONE_NEWNS),
)


def app_environment(pid: int) -> Dict[str, str]:
    data = Path(f"/proc/{pid}/environ").read_bytes()
    env: Dict[str, str] = {}
    for item in data.split(b"\0"):
        key, has_value, value = item.partition(b"=")
        if has_value:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def enter(target_pid: int, template: Launch, argv: List[str]) -> int:
    """Run `argv` in the app whose main process is `target_pid`; returns its exit code."""
    try:
        env = app_environment(target_pid)
        handles = [
            (os.open(f"/proc/{target_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag) for name, flag in NAMESPACES
        ]
    except OSError as exc:
        raise PodStateError(
            f"cannot reach the app process {target_pid}: {exc.strerror}", hint="is the pod still running?"
        ) from exc
    child = os.fork()
    if child == 0:
        try:
            for path in template.restrictions.cgroup_procs:
                with open(path, "w") as stream:
                    stream.write("0")
            for fd, flag in handles:
                linux.setns(fd, flag)
                os.close(fd)
            os.chdir("/")
            grandchild = os.fork()  # the PID namespace applies to children only
            if grandchild == 0:
                launch = Launch(
                    template.app, argv, env, "/", template.workdir, template.identity, template.restrictions
                )
                launch.restrictions.cgroup_procs = []
                exec_app(launch, enter=False)
            _pid, status = os.waitpid(grandchild, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
        except BaseException as exc:  # the forked child must never return
            os.write(2, f"rocket: enter failed: {exc}\n".encode())
            os._exit(254)
    for fd, _kind in handles:
        os.close(fd)
    cgroup_warmup.stop(after=cgroup_warmup.AFTER_FIRST_MOVE)  # started by cli/entry.py; the child joins at once
    _pid, status = os.waitpid(child, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
