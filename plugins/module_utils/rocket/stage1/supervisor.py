"""The pod supervisor: one process per running pod, and no daemon above it.

It holds the pod's lock for the pod's whole life (so `status` knows a pod whose supervisor died has
exited), records its pid with its start time, creates the pod's cgroups, enters new mount, UTS, IPC,
network and PID namespaces, starts the metadata service on a socket inside the pod's network namespace,
forks the pod's init (PID 1 of the pod), relays each app's output into size-capped log files, turns
TERM, INT, QUIT and HUP (and a reader that left) into one TERM to init (docs/pods.md, "Signals"), and
records the pod's exit. Its own exit code is the pod's.
"""

from __future__ import annotations

import _socket  # socket's C core: socket.py's enums cost ~3 ms before init is forked; see listen_on
import _thread  # threading's core: threading costs ~1.5 ms before init is forked
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path

from .. import cgroup_warmup
from ..fileio import atomic_write
from ..net.attach import PodNetwork
from ..pod import PodFiles
from . import linux
from .flavor import flavor_named
from .init import PodRun, pod_init_main

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

    from ..metadata import MetadataService
    from .terminal import PodTerminal

LOG_CAP = 8 << 20
INIT_NAME = b"rocket-init"  # what the apps see as PID 1's command line
# What stops a pod through its supervisor: `rocket stop` (TERM), and at a terminal ^C (INT), ^\ (QUIT)
# and a hang-up (HUP). Each becomes a TERM to the pod's init, which stops the apps in order.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
PR_SET_DUMPABLE = 4
METADATA_PORT = 2375


def process_start_time(pid: int) -> int:
    """The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as stream:
        data = stream.read()
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def write_json(path: Path, value: Dict[str, object]) -> None:
    atomic_write(path, json.dumps(value, sort_keys=True).encode(), durable=False)  # runtime state


class LogRelay:
    """Copies each app's output pipe into its log file, rotating once at the cap; echoes if asked."""

    def __init__(self, files: PodFiles, pipes: Dict[str, int], *, echo: bool) -> None:
        import selectors  # made once init is forked: its import overlaps the pod's start

        self.files = files
        self.echo = echo
        self.unseen = False  # echoing failed: nobody reads this process's output any more
        self.selector = selectors.DefaultSelector()
        self.logs: Dict[int, tuple] = {}
        for app, fd in pipes.items():
            os.set_blocking(fd, False)
            path = files.app_log(app)
            path.parent.mkdir(parents=True, exist_ok=True)
            stream = open(path, "ab")
            self.logs[fd] = (app, path, stream)
            self.selector.register(fd, selectors.EVENT_READ)

    def watch(self, fd: int) -> None:
        import selectors

        self.selector.register(fd, selectors.EVENT_READ)

    def unwatch(self, fd: int) -> None:
        self.selector.unregister(fd)

    def pump(self, timeout: Optional[float]) -> List[int]:
        """Move whatever output is ready; returns the other ready descriptors (the wake-up pipe)."""
        others = []
        for key, _events in self.selector.select(timeout):
            fd = int(key.fd)  # type: ignore[arg-type]
            if fd not in self.logs:
                others.append(fd)
                continue
            self._copy(fd)
        return others

    def _copy(self, fd: int) -> None:
        app, path, stream = self.logs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(fd)
            os.close(fd)
            stream.close()
            del self.logs[fd]
            return
        stream.write(data)
        stream.flush()
        if self.echo:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            except OSError:  # EPIPE: the reader left; EIO: the terminal hung up
                self.echo = False
                self.unseen = True
        if stream.tell() > LOG_CAP:
            stream.close()
            os.replace(path, str(path) + ".1")
            self.logs[fd] = (app, path, open(path, "ab"))

    def drain(self) -> None:
        while self.logs:
            if not self.selector.select(0.2):
                break
            for fd in list(self.logs):
                self._copy(fd)


def bring_up_loopback() -> None:
    """`ip link set lo up`, with one ioctl instead of a process."""
    import fcntl
    import struct

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock.fileno(), 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock.fileno(), 0x8914, struct.pack("16sH14s", b"lo", flags | 0x1, b""))  # SIOCSIFFLAGS, IFF_UP
    finally:
        sock.close()


def wait_for_a_client(listener: _socket.socket) -> None:
    """Block until a client connects to `listener` (its connection waits in the backlog, unaccepted)."""
    import select

    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN)
    while not poller.poll():
        pass


def listen_on(host: str, port: int) -> _socket.socket:
    """A listening TCP socket for the metadata service; as_socket() makes it a socket.socket later."""
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        if port:
            listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    return listener


def as_socket(raw: _socket.socket) -> Any:
    """The socket.socket for a socket made by listen_on (imports socket: call it off the start path)."""
    import socket

    return socket.socket(fileno=raw.detach())


NAMESPACED_SYSCTLS = ("net.", "kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")


def apply_sysctls(sysctls: Dict[str, str], *, private_network: bool) -> None:
    """Write the pod's sysctls; only those that belong to the pod's own IPC and network namespaces."""
    from ..errors import PodStateError

    for key, value in sysctls.items():
        if not key.startswith(NAMESPACED_SYSCTLS) or (key.startswith("net.") and not private_network):
            raise PodStateError(
                f"sysctl {key} is not namespaced: setting it would change the host",
                hint="only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* can be set per pod",
            )
        with open("/proc/sys/" + key.replace(".", "/"), "w") as stream:
            stream.write(str(value))


def collect_from_now_on() -> None:
    """Right before init is forked: freeze what exists and turn the garbage collector on.

    Objects that exist now are shared with init after the fork; frozen, the collector never writes to
    them, so their pages stay shared instead of being copied into every pod's init. The supervisor and
    init live as long as the pod, so the collector, off while the command started (cli/entry.py), runs.
    """
    gc.freeze()
    gc.enable()


def _children_in_own_pid_namespace() -> None:
    """Undo unshare(CLONE_NEWPID) for later children and threads (this process never left its own)."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(own, linux.CLONE_NEWPID)
    finally:
        os.close(own)


def supervise(
    pod: PodRun,
    files: PodFiles,
    *,
    hostname: str,
    private_network: bool,
    lock_fd: int,
    foreground: bool,
    metadata: Optional[Callable[[], Any]],
    ready_fd: Optional[int],
    sysctls: Optional[Dict[str, str]] = None,
    flavor: str = "ns",
    interactive: bool = False,
    metadata_listener: Optional[_socket.socket] = None,
    network: Optional[PodNetwork] = None,
    adopt_init: Optional[Callable[[int], None]] = None,
    journal: bool = False,
) -> int:
    """Run the pod to its end under the isolation `flavor` (stage1/flavor.py); returns the exit code.

    The apps' output is echoed on stdout `foreground` (`rocket run`: the pod stops once nobody reads
    it) or to the `journal` (a systemd unit: a journald restart only ends the echo).

    The PID namespace is unshared last and apart: a mount namespace cannot be unshared once threads
    run, and a process whose children go to another PID namespace cannot start threads, so the
    metadata service's thread starts after init is forked and the supervisor has set that back.
    The pod's networks are set up around the unshare of the network namespace and torn down at the end,
    also when the set-up fails half-way.
    """
    write_json(files.supervisor, {"pid": os.getpid(), "start_time": process_start_time(os.getpid())})
    terminal: Optional[PodTerminal] = None
    try:
        if interactive and os.isatty(0):
            from .terminal import PodTerminal

            terminal = PodTerminal()  # the operator's terminal is raw from here until the finally
        if network is not None:
            network.host_side()
        return _supervise(
            pod,
            files,
            hostname=hostname,
            private_network=private_network,
            lock_fd=lock_fd,
            foreground=foreground,
            journal=journal,
            metadata=metadata,
            ready_fd=ready_fd,
            sysctls=sysctls,
            flavor=flavor,
            interactive=interactive,
            terminal=terminal,
            metadata_listener=metadata_listener,
            network=network,
            adopt_init=adopt_init,
        )
    finally:
        if terminal is not None:
            terminal.restore()
        if network is not None:
            # Children would be born into the pod's PID namespace, which died with its init: back to ours.
            _children_in_own_pid_namespace()
            for problem in network.teardown():
                sys.stderr.write(f"rocket: warning: pod network teardown: {problem}\n")


def _supervise(
    pod: PodRun,
    files: PodFiles,
    *,
    hostname: str,
    private_network: bool,
    lock_fd: int,
    foreground: bool,
    journal: bool,
    metadata: Optional[Callable[[], Any]],
    ready_fd: Optional[int],
    sysctls: Optional[Dict[str, str]],
    flavor: str,
    interactive: bool,
    terminal: Optional[PodTerminal],
    metadata_listener: Optional[_socket.socket],
    network: Optional[PodNetwork],
    adopt_init: Optional[Callable[[int], None]],
) -> int:
    pipes: Dict[str, int] = {}
    for app in pod.apps:
        if terminal is not None:
            # A terminal of the pod's own (terminal.py), also the pod's /dev/console; nothing is logged.
            app.stdout, app.terminal, app.root.console = terminal.slave, True, terminal.slave_name
            continue
        if interactive:
            app.stdout = 1  # no terminal: the app reads and writes this process's own input and output
            continue
        read_end, write_end = os.pipe()
        pipes[app.name] = read_end
        app.stdout = write_end

    isolation = flavor_named(flavor)
    linux.unshare(isolation.namespaces(private_network=private_network))
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
    if isolation.own_hostname:
        linux.sethostname(hostname)
    if not isolation.pid_namespace:
        linux.set_child_subreaper()  # init is not PID 1 then, but must still reap the apps' orphans
    listener: Optional[_socket.socket] = metadata_listener
    if private_network:
        bring_up_loopback()
    if network is not None:
        network.pod_side()
    apply_sysctls(sysctls or {}, private_network=private_network)
    if metadata is not None and listener is None:
        # Listening before the apps start: early requests wait in the backlog until the thread serves.
        listener = listen_on("127.0.0.1", METADATA_PORT)

    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    requested: List[int] = []
    for signum in STOP_SIGNALS:
        # A signal ignored on entry stays ignored (nohup, a shell's background job); SIGTERM, `rocket
        # stop`'s, always stops the pod. (With a pod terminal, the operator's keys are bytes for it.)
        if signum == signal.SIGTERM or signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, lambda signum, _frame: requested.append(signum))
    signal.signal(signal.SIGCHLD, lambda *_args: None)
    resized: List[int] = []
    if terminal is not None:
        signal.signal(signal.SIGWINCH, lambda signum, _frame: resized.append(signum))

    if isolation.pid_namespace:
        linux.unshare(linux.CLONE_NEWPID)
    collect_from_now_on()
    init_pid = os.fork()
    if init_pid == 0:
        try:
            # A session of the pod's own: the terminal's ^C, ^\, ^Z and hang-up reach this supervisor
            # alone, which stops the apps in order (TERM, grace period, KILL) instead of each app dying
            # of the key's signal at once. An interactive app leads a session of its own terminal.
            os.setsid()
            if not interactive or terminal is not None:
                # Input only with --interactive (as rkt, and podman without -i): no app reads, or pushes
                # keys into (TIOCSTI), the operator's terminal.
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
            if terminal is not None:
                os.close(terminal.master)
            os.close(lock_fd)  # only the supervisor may hold the pod's lock
            linux.set_pdeathsig(signal.SIGKILL)
            # PID 1 of the pod is a fork of rocket: its memory holds the operator's environment and the
            # host's paths. Non-dumpable, its /proc files need CAP_SYS_PTRACE, which no app has; but
            # anyone reads /proc/1/cmdline, which showed rocket's whole command line (every app's
            # --set-env values, the host's folders): the pod sees a name instead.
            linux.prctl(PR_SET_DUMPABLE, 0)
            linux.set_command_line(INIT_NAME)
            signal.set_wakeup_fd(-1)
            for fd in (wake_read, wake_write, *pipes.values()):
                os.close(fd)
            if listener is not None:
                listener.close()
            code = pod_init_main(pod)
        except BaseException as exc:
            sys.stderr.write(f"rocket: pod init failed: {exc}\n")
            code = 254
        os._exit(code)

    # Right after the fork, two things overlap with init building the apps' roots:
    # - this thread moves init into the pod's cgroups. Unless cgroup_warmup's thread has the kernel's
    #   RCU grace period behind it already, the move first waits for one (5-20 ms, cgroups.py: adopt),
    #   which holds the first app back anyway; the apps' own moves then do not wait again. The wait is
    #   in a system call, so the GIL is free meanwhile.
    # - a background thread waits for the metadata service's first client, then loads the service
    #   (requests wait in the listener's backlog until it serves).
    # A process whose children go to another PID namespace cannot start threads: back to its own first.
    services: List[MetadataService] = []
    if metadata is not None and listener is not None:
        bound = listener
        if isolation.pid_namespace:
            _children_in_own_pid_namespace()
        # This thread must win the GIL back within a fraction of a millisecond whenever the pod needs
        # it (its end, a signal), not after the default 5 ms slices of the service's thread.
        sys.setswitchinterval(0.0001)

        def load_metadata() -> None:
            # Only once an app connects: a pod that never asks costs neither the service's imports nor
            # its memory, and the kernel's wait for init's cgroup move (below) runs on idle CPUs.
            wait_for_a_client(bound)
            service = metadata()
            service.serve(as_socket(bound))
            services.append(service)  # last: a listed service is serving

        _thread.start_new_thread(load_metadata, ())  # a daemon: os._exit ends it with the supervisor
    if adopt_init is not None:
        try:  # init may be gone already; then its apps only lose the head start
            adopt_init(init_pid)
        except OSError:
            pass
    # The apps join their cgroups within milliseconds of init's move: keep the kernel's passed grace
    # period (cgroup_warmup.py, started by `rocket run` or lifecycle.start) a little longer for them.
    cgroup_warmup.stop(after=cgroup_warmup.AFTER_FIRST_MOVE)
    for app in pod.apps:
        if app.stdout != 1:
            os.close(app.stdout)
    if terminal is not None:
        terminal.slave = -1  # closed just above: the app's side is init's and the app's alone now
    started = time.time()
    write_json(files.status, {"state": "running", "started": started, "init_pid": init_pid})
    if ready_fd is not None:
        os.write(ready_fd, b"running\n")
        os.close(ready_fd)

    relay = LogRelay(files, pipes, echo=foreground or journal)
    relay.watch(wake_read)
    if terminal is not None:
        for fd in terminal.watched():
            relay.watch(fd)
    forwarded = 0
    status: Optional[int] = None
    try:
        while status is None:
            for fd in relay.pump(1.0):
                if fd == wake_read:
                    try:
                        os.read(wake_read, 512)
                    except BlockingIOError:
                        pass
                elif terminal is not None and not terminal.pump(fd):
                    relay.unwatch(fd)  # the operator's input ended, or every app's side closed
            if resized:
                resized.clear()
                terminal.resize()  # type: ignore[union-attr]
            if relay.unseen and foreground and signal.SIGPIPE not in requested:
                # Whoever read `rocket run`'s output is gone (`| head`, a closed pager): end the pod
                # as a pipeline's writer ends, in order; its logs still get everything.
                requested.append(signal.SIGPIPE)
            while len(requested) > forwarded:
                os.kill(init_pid, signal.SIGTERM)
                forwarded += 1
            done, raw = os.waitpid(init_pid, os.WNOHANG)
            if done == init_pid:
                status = raw
        relay.drain()
        if terminal is not None:
            terminal.drain()
    except BaseException:
        # A bug in this loop must not leave the pod running without its supervisor: gone with init,
        # the apps leave their cgroups empty for the caller to remove.
        if status is None:
            os.kill(init_pid, signal.SIGKILL)
            os.waitpid(init_pid, 0)
        raise
    # A pod that ended before its metadata service finished loading does not wait for it: the process
    # ends right after this (os._exit), and the background thread with it.
    for service in services:
        service.shutdown()
    code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    code = code if code >= 0 else 128 - code
    write_json(files.status, {"state": "exited", "started": started, "finished": time.time(), "exit_code": code})
    return code
