"""File locks with flock(2): the kernel drops them when the holding process dies, so a crash never
leaves a stale lock behind."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from .errors import StoreError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Optional, Type


class FileLock:
    """An exclusive or shared flock on a lock file, usable as a context manager."""

    def __init__(self, path: os.PathLike[str] | str, *, shared: bool = False) -> None:
        self.path = Path(path)
        self.shared = shared
        self._fd: Optional[int] = None

    def acquire(self, *, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Take the lock; with blocking=False return False at once if another process holds it."""
        if self._fd is not None:
            raise AssertionError(f"bug: lock {self.path} acquired twice")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        operation = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, operation | (fcntl.LOCK_NB if (not blocking or deadline) else 0))
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
                if not blocking:
                    os.close(fd)
                    return False
                if deadline is not None and time.monotonic() > deadline:
                    os.close(fd)
                    raise StoreError(
                        f"timed out after {timeout:.0f}s waiting for lock {self.path}",
                        hint="another rocket command holds it; wait for it to finish",
                        path=str(self.path),
                    ) from exc
                time.sleep(0.05)
        self._fd = fd
        return True

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def fileno(self) -> int:
        """The descriptor that holds the lock (to compare it with the lock file's path)."""
        if self._fd is None:
            raise AssertionError(f"bug: lock {self.path} is not held")
        return self._fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()
