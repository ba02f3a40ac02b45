"""`rocket enter`: run a command inside a running app, under exactly the app's restrictions.

rkt's CVE-2019-10144/10145/10147 came from an `enter` that joined the namespaces but not the app's
capability bounding set, seccomp filter and cgroup. Here the entered process joins the app's cgroups
first (while the host's cgroup file system is still reachable), then the app process's IPC, UTS, network,
cgroup, PID and mount namespaces, and finally goes through launch.confine, the very function that
confined the app, before exec. Its environment is the app's own (read from /proc/PID/environ).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from .. import cgroup_warmup
from ..errors import PodStateError
from . import linux
from .launch import Launch, exec_app

if TYPE_CHECKING:
    from .terminal import PodTerminal

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
    # At a terminal the command gets one of its own, relayed, not the operator's (terminal.py: TIOCSTI).
    terminal: Optional[PodTerminal] = None
    if os.isatty(0):
        from .terminal import PodTerminal

        terminal = PodTerminal()
    try:
        return _run_entered(target_pid, template, argv, env, handles, terminal)
    finally:
        if terminal is not None:
            terminal.restore()


def _run_entered(
    target_pid: int,
    template: Launch,
    argv: List[str],
    env: Dict[str, str],
    handles: List[Tuple[int, int]],
    terminal: Optional[PodTerminal],
) -> int:
    child = os.fork()
    if child == 0:
        try:
            if terminal is not None:
                os.close(terminal.master)
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
                if terminal is not None:
                    terminal.take()
                exec_app(launch, enter=False)
            _pid, status = os.waitpid(grandchild, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
        except BaseException as exc:  # the forked child must never return
            os.write(2, f"rocket: enter failed: {exc}\n".encode())
            os._exit(254)
    for fd, _kind in handles:
        os.close(fd)
    cgroup_warmup.stop(after=cgroup_warmup.AFTER_FIRST_MOVE)  # started by cli/entry.py; the child joins at once
    if terminal is not None:
        os.close(terminal.slave)
        terminal.slave = -1
        resize = signal.signal(signal.SIGWINCH, lambda _signum, _frame: terminal.resize())  # type: ignore[union-attr]
        ended: List[int] = []  # the child's wait status, once reaped

        def finished() -> bool:
            if not ended:
                pid, status = os.waitpid(child, os.WNOHANG)
                if pid == child:
                    ended.append(status)
            return bool(ended)

        try:
            terminal.serve(finished)
        finally:
            signal.signal(signal.SIGWINCH, resize)
    status = ended[0] if terminal is not None else os.waitpid(child, 0)[1]
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
