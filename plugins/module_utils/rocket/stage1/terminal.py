"""The terminal of an interactive pod: a pseudo-terminal of its own, relayed to the operator's.

`rocket run --interactive` at a terminal gives the app a new pseudo-terminal, as systemd-nspawn (rkt's
stage1), podman -it and docker -it do, never the operator's own: a process whose controlling
terminal is the operator's can push keystrokes into its input queue (TIOCSTI, without any capability
where dev.tty.legacy_tiocsti is 1) and have the operator's shell run them once the pod ends. The app
is the session leader of the new terminal (init.py makes it the controlling terminal), so ^C, ^Z and
job control work in it; the operator's terminal is in raw mode meanwhile and passes every key
through, and is restored however the pod ends. Window-size changes follow (SIGWINCH).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios
import tty

from ..errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional

CHUNK = 65536


def require_foreground(doing: str) -> None:
    """Refuse a pod terminal to a background job: switching the operator's terminal to raw mode would
    stop it (SIGTTOU), and its keys belong to the job in the foreground."""
    try:
        foreground = os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        foreground = False
    if not foreground:
        raise UsageError(f"{doing} at a terminal must run in its foreground", hint="run it without '&', or 'fg' it")


class PodTerminal:
    """The pseudo-terminal pair, the operator's terminal (fd 0 and 1) and the relay between them."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.slave_name = os.ttyname(self.slave)
        os.set_blocking(self.master, False)
        self.saved: Optional[List[Any]] = None
        self.resize()
        self.saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)

    def resize(self) -> None:
        """Give the pod's terminal the operator's window size (the kernel then tells the app)."""
        try:
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
        except OSError:
            pass  # no size to copy: the app keeps the default

    def watched(self) -> List[int]:
        """The descriptors whose input the supervisor's loop hands to `pump`."""
        return [0, self.master]

    def pump(self, fd: int) -> bool:
        """Move what `fd` has to the other side; False once that side has ended."""
        if fd == self.master:
            return self.drain()
        data = os.read(0, CHUNK)
        if not data:
            # Input ended (it was not typed): end of file for the app, as ^D would be.
            self._write(self.master, b"\x04")
            return False
        self._write(self.master, data)
        return True

    def drain(self) -> bool:
        """Copy everything the app has written so far to the operator's terminal; False once every
        copy of the app's side is closed."""
        while True:
            try:
                data = os.read(self.master, CHUNK)
            except BlockingIOError:
                return True
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return False
                raise
            if not data:
                return False
            self._write(1, data)

    def serve(self, finished: Callable[[], bool]) -> None:
        """Relay until `finished()` (asked at least every 0.1 s), then pass on the last output. For
        `rocket enter`, which has no supervisor's loop to join."""
        watched = self.watched()
        while not finished():
            ready, _writable, _failed = select.select(watched, [], [], 0.1)
            for fd in ready:
                if not self.pump(fd):
                    watched.remove(fd)
        self.drain()

    def take(self) -> None:
        """In the process that runs the app (`rocket enter`'s): see take_terminal."""
        take_terminal(self.slave)

    def restore(self) -> None:
        """The operator's terminal as it was, and the pair closed."""
        if self.saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
            self.saved = None
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                # The app is not reading its input: keep its output flowing while waiting for room,
                # or both sides would wait for each other.
                select.select([self.master], [fd], [], 0.1)
                self.drain()
            except OSError:
                return  # the operator's terminal hung up: SIGHUP stops the pod


def take_terminal(fd: int) -> None:
    """In the process about to exec the app: the pod's terminal `fd` becomes its stdin, stdout, stderr
    and controlling terminal, in a session of its own (so ^C, ^Z and job control are the app's)."""
    os.setsid()
    for target in (0, 1, 2):
        os.dup2(fd, target)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
