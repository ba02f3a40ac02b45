"""The last steps of an app process, between fork and exec: cgroup, root, identity, privileges, exec.

The order matters and follows runc: open the app's cgroups' files while host paths are still visible; a
private mount namespace and `pivot_root` into the app's root (the old root detached, so no path leads
back); then join the cgroups through the open files (the kernel may first wait ~10 ms for an RCU grace
period, cgroups.py: adopt, so the root is built before, not after, that wait) and, after the join, a
cgroup namespace rooted there; then, still privileged, drop the capability bounding set and install
the seccomp filter (unless no_new_privs lets an unprivileged process install it, in which case the
filter goes on last); then groups, gid, uid and the final capability sets; then exec. `rocket enter`
goes through the same function, so an entered process gets exactly the app's restrictions.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C core, without stubs; see default_signals
import os
import sys

from ..record import Record
from . import linux

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Dict, List, NoReturn, Optional, Sequence, Set

EXIT_CANNOT_START = 127
APP_UMASK = 0o022


class Identity(Record):
    """Who an app runs as: user, group and supplementary groups."""

    FIELDS = ("uid", "gid", "groups")

    def __init__(self, uid: int = 0, gid: int = 0, groups: Optional[List[int]] = None) -> None:
        self.uid = uid
        self.gid = gid
        self.groups = [] if groups is None else groups


class Restrictions(Record):
    """What confines an app (and anything entered into it)."""

    FIELDS = ("capabilities", "no_new_privs", "seccomp", "cgroup_procs", "oom_score_adj", "cgroup_namespace")

    def __init__(
        self,
        capabilities: Optional[Set[int]] = None,
        no_new_privs: bool = False,
        seccomp: Optional[bytes] = None,
        cgroup_procs: Optional[List[str]] = None,
        oom_score_adj: Optional[int] = None,
        cgroup_namespace: bool = True,
    ) -> None:
        self.capabilities = set() if capabilities is None else capabilities
        self.no_new_privs = no_new_privs
        self.seccomp = seccomp  # a compiled filter, or None for none
        self.cgroup_procs = [] if cgroup_procs is None else cgroup_procs  # cgroup.procs files to join
        self.oom_score_adj = oom_score_adj
        self.cgroup_namespace = cgroup_namespace  # fly pods keep the host's view of cgroups


class Launch(Record):
    """One process to start in an app's root."""

    FIELDS = ("app", "argv", "env", "root", "workdir", "identity", "restrictions")

    def __init__(
        self,
        app: str,
        argv: List[str],
        env: Dict[str, str],
        root: str,
        workdir: str,
        identity: Identity,
        restrictions: Restrictions,
    ) -> None:
        self.app = app
        self.argv = argv
        self.env = env
        self.root = root
        self.workdir = workdir
        self.identity = identity
        self.restrictions = restrictions


def find_program(argv0: str, env: Dict[str, str]) -> str:
    """The executable for argv[0]: a path as is, a bare name searched in the app's PATH."""
    if "/" in argv0:
        return argv0
    for folder in env.get("PATH", "").split(":"):
        candidate = os.path.join(folder or ".", argv0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return argv0


def open_cgroups(paths: Sequence[str]) -> List[int]:
    """Descriptors of the cgroup.procs files to join, opened while the host's paths are visible."""
    fds: List[int] = []
    try:
        for path in paths:
            fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def join_cgroups(fds: Sequence[int]) -> None:
    """Move this process into each cgroup, through its open cgroup.procs; closes the descriptors."""
    try:
        for fd in fds:
            os.write(fd, b"0")
    finally:
        for fd in fds:
            os.close(fd)


def enter_root(root: str) -> None:
    """Make `root` this process's `/` in a mount namespace of its own, with the old root gone."""
    linux.unshare(linux.CLONE_NEWNS)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


def confine(restrictions: Restrictions, identity: Identity) -> None:
    """Drop to the app's identity and privileges; call in the app's root, right before exec."""
    from .caps import apply_capabilities, drop_bounding_set
    from .seccomp import install_filter

    if restrictions.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as stream:
            stream.write(str(restrictions.oom_score_adj))
    drop_bounding_set(restrictions.capabilities)
    if restrictions.no_new_privs:
        linux.set_no_new_privs()
    elif restrictions.seccomp is not None:
        install_filter(restrictions.seccomp)  # needs CAP_SYS_ADMIN, which is still held here
    os.setgroups(identity.groups)
    os.setresgid(identity.gid, identity.gid, identity.gid)
    apply_capabilities(restrictions.capabilities, uid=identity.uid)
    if restrictions.no_new_privs and restrictions.seccomp is not None:
        install_filter(restrictions.seccomp)


def default_signals() -> None:
    """Give the program every signal's default action and an empty signal mask, as systemd does for a
    service: an ignored signal stays ignored across exec, and this process ignores some that programs
    rely on (Python ignores SIGPIPE and SIGXFSZ; nohup, a shell's background job or --interactive's
    supervisor ignore SIGHUP, SIGINT or SIGQUIT). Last before exec: a stop signal that arrives after
    this ends the process, as it would the program."""
    # Only the ignored ones: exec itself resets caught signals. getsignal reads Python's table, which
    # starts as the dispositions the process inherited: no system call per signal. _signal's, because
    # signal's wraps every number in an enum (0.3 ms for all of them, on the way to every app's exec).
    for signum in range(1, _signal.NSIG):
        if _signal.getsignal(signum) == _signal.SIG_IGN:
            _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def exec_app(launch: Launch, *, enter: bool = True) -> NoReturn:
    """Become the app: never returns; on failure prints why and exits 127."""
    try:
        # Only stdin, stdout and stderr go through exec: no descriptor that whoever ran rocket left
        # open (a shell's, an agent's socket) reaches the app, as with runc and systemd.
        linux.close_range_or_fallback(3, cloexec=True)
        # And the file mode mask of a service (systemd's and runc's default), not the one of whoever
        # ran rocket: an app's files must not depend on the operator's shell.
        os.umask(APP_UMASK)
        cgroups = open_cgroups(launch.restrictions.cgroup_procs)
        if enter:
            enter_root(launch.root)
        join_cgroups(cgroups)
        if enter and launch.restrictions.cgroup_namespace:
            linux.unshare(linux.CLONE_NEWCGROUP)
        confine(launch.restrictions, launch.identity)
        os.chdir(launch.workdir or "/")
        program = find_program(launch.argv[0], launch.env)
        default_signals()
        os.execve(program, launch.argv, launch.env)
    except OSError as exc:
        what = exc.filename if isinstance(exc.filename, str) else launch.argv[0]
        sys.stderr.write(f"rocket: app {launch.app}: cannot start {what}: {exc.strerror}\n")
    except Exception as exc:
        sys.stderr.write(f"rocket: app {launch.app}: cannot start: {exc}\n")
    sys.stderr.flush()
    os._exit(EXIT_CANNOT_START)
