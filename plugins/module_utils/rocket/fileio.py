"""The one way the engine writes a file, plus the few file-system primitives the store needs.

A write goes to a temporary file beside the target, is fsynced, renamed over the target, and the
parent folder is fsynced, so a crash leaves either the old content or the new, never a mix.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import BinaryIO, Optional


class atomic_output:  # pylint: disable=invalid-name  # used as the function it was: with atomic_output(path)
    """A file to write in a `with` block; on success it replaces `path` atomically (and durably), on error
    it vanishes. A class rather than contextlib.contextmanager: contextlib costs ~1 ms of every pod start.

    durable=False skips the fsyncs, for runtime state that means nothing after a reboot (a running
    pod's status): readers still see the old content or the new, never a mix.
    """

    def __init__(self, path: os.PathLike[str] | str, *, mode: int = 0o644, durable: bool = True) -> None:
        self.target = Path(path)
        self.mode = mode
        self.durable = durable
        self.tmp = ""
        self.stream: Optional[BinaryIO] = None

    def __enter__(self) -> BinaryIO:
        fd, self.tmp = _create_beside(self.target)
        self.stream = os.fdopen(fd, "wb")
        return self.stream

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        stream = self.stream
        if stream is None:
            raise AssertionError("bug: atomic_output left without being entered")
        try:
            if kind is None:
                stream.flush()
                os.fchmod(stream.fileno(), self.mode)
                if self.durable:
                    os.fsync(stream.fileno())
            stream.close()
            if kind is None:
                os.replace(self.tmp, self.target)
        except BaseException:
            stream.close()
            _remove(self.tmp)
            raise
        if kind is not None:
            _remove(self.tmp)
            return  # the block's exception goes on
        if self.durable:
            fsync_dir(self.target.parent)


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def _create_beside(target: Path) -> tuple[int, str]:
    """A new private temporary file beside `target`: tempfile.mkstemp's job, without its imports."""
    while True:
        tmp = str(target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue


def atomic_write(path: os.PathLike[str] | str, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data` atomically (and durably unless durable=False)."""
    with atomic_output(path, mode=mode, durable=durable) as stream:
        stream.write(data)


def append_record(path: os.PathLike[str] | str, line: bytes) -> None:
    """Append one line to an append-only log with a single write(2), durably.

    O_APPEND makes each write land whole at the end even with several writers; the log is never
    rewritten, so it is the one file not written through atomic_output.
    """
    if b"\n" in line.rstrip(b"\n"):
        raise AssertionError("bug: a log record must be one line")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, line.rstrip(b"\n") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make the renames and creations inside a folder durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc: Optional[ctypes.CDLL] = None


def syncfs(path: os.PathLike[str] | str) -> None:
    """Flush the whole file system holding `path`: one call instead of an fsync per extracted file."""
    global _libc
    if _libc is None:
        # The symbols of the running process (libc among them): find_library would fork ldconfig.
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def remove_tree(path: os.PathLike[str] | str) -> None:
    """Delete a folder tree that may hold read-only folders; a missing path is fine."""
    target = Path(path)

    def make_writable_and_retry(func, failed_path, _exc_info):  # type: ignore[no-untyped-def]
        parent = os.path.dirname(failed_path)
        os.chmod(parent, 0o700)
        if os.path.isdir(failed_path) and not os.path.islink(failed_path):
            os.chmod(failed_path, 0o700)
        func(failed_path)

    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        import shutil  # only here: pod starts write files but remove none

        shutil.rmtree(target, onerror=make_writable_and_retry)
