"""The skeleton of an imported archive: everything but file data, so the archive can be rebuilt exactly.

The store keeps an image once, extracted. The skeleton records the archive's header blocks, padding and
end marker verbatim, and for each regular file the path under the image folder and its size. Replaying
it with the extracted files gives back the original uncompressed tar byte for byte, hence the same
image ID: that is how `image export` and `image verify` work without a second copy of every image.

Format: the magic line, then records; each is one tag byte and its fields (big-endian):
    R <u32 length> <bytes>          raw archive bytes
    F <u64 size> <u8 checks> <u32 mode> <u32 uid> <u32 gid> <i64 mtime ns> <u32 length> <path>
                                     the data of the regular file at `path` (relative to the image folder),
                                     and the metadata replay checks (bits: 1 owner, 2 mode, 4 mtime)
    Z <u64 count>                    zero bytes (the end marker and its padding)
    E                                end of skeleton
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path
from typing import BinaryIO, NamedTuple, Optional

from .errors import StoreError

MAGIC = b"rocket-skeleton 2\n"
CHECK_OWNER = 1
CHECK_MODE = 2
CHECK_MTIME = 4
_FILE = struct.Struct(">QBIIIqI")
_FLUSH_AT = 1 << 16
_COPY_CHUNK = 1 << 20


class SkeletonWriter:
    """Collects the non-data bytes of an archive while it is extracted, into one file, in large writes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._raw = bytearray()  # raw bytes not yet framed as an R record
        self._out = bytearray(MAGIC)  # framed records not yet written

    def raw(self, data: bytes) -> None:
        self._raw += data

    def zeros(self, count: int) -> None:
        self._frame_raw()
        self._out += b"Z" + struct.pack(">Q", count)

    def file(
        self, path: bytes, size: int, *, checks: int = 0, mode: int = 0, uid: int = 0, gid: int = 0, mtime_ns: int = 0
    ) -> None:
        """Record that the next `size` archive bytes are the content of `path`, with the metadata it got."""
        self._frame_raw()
        self._out += b"F" + _FILE.pack(size, checks, mode, uid, gid, mtime_ns, len(path)) + path
        if len(self._out) >= _FLUSH_AT:
            self._stream.write(self._out)
            self._out.clear()

    def close(self) -> None:
        self._frame_raw()
        self._out += b"E"
        self._stream.write(self._out)
        self._out.clear()

    def _frame_raw(self) -> None:
        if self._raw:
            self._out += b"R" + struct.pack(">I", len(self._raw)) + self._raw
            self._raw.clear()


def _corrupt(image_dir: Path, why: str) -> StoreError:
    return StoreError(
        f"image {image_dir.name} is damaged in the store: {why}",
        hint=f"remove it with 'rocket image rm {image_dir.name}' and fetch it again",
        image=image_dir.name,
    )


def _read(stream: BinaryIO, size: int, image_dir: Path) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise _corrupt(image_dir, "its skeleton is truncated")
    return data


def replay(image_dir: Path, out: Optional[BinaryIO]) -> str:
    """Rebuild the archive of the image in `image_dir` into `out` (or nowhere); return its image ID."""
    digest = hashlib.sha512()
    buffer = bytearray(_COPY_CHUNK)
    view = memoryview(buffer)

    def emit(data: bytes | memoryview) -> None:
        digest.update(data)
        if out is not None:
            out.write(data)

    try:
        stream = open(image_dir / "skeleton", "rb")
    except FileNotFoundError:
        raise _corrupt(image_dir, "its skeleton is missing") from None
    with stream:
        if stream.read(len(MAGIC)) != MAGIC:
            raise _corrupt(image_dir, "its skeleton has an unknown format")
        while True:
            tag = stream.read(1)
            if tag == b"E":
                break
            if tag == b"R":
                (length,) = struct.unpack(">I", _read(stream, 4, image_dir))
                emit(_read(stream, length, image_dir))
            elif tag == b"Z":
                (count,) = struct.unpack(">Q", _read(stream, 8, image_dir))
                zero_block = bytes(min(count, _COPY_CHUNK))
                while count:
                    step = min(count, len(zero_block))
                    emit(zero_block[:step])
                    count -= step
            elif tag == b"F":
                size, checks, mode, uid, gid, mtime_ns, length = _FILE.unpack(_read(stream, _FILE.size, image_dir))
                relative = _read(stream, length, image_dir)
                expected = _Expected(size, checks, mode, uid, gid, mtime_ns)
                _replay_file(image_dir, relative, expected, view, emit)
            else:
                raise _corrupt(image_dir, f"its skeleton has an unknown record {tag!r}")
    return "sha512-" + digest.hexdigest()


class _Expected(NamedTuple):
    size: int
    checks: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int


def _check_meta(image_dir: Path, shown: str, info: os.stat_result, expected: _Expected) -> None:
    """A stored file must still have the size, owner, mode and mtime it was imported with."""
    if info.st_size != expected.size:
        raise _corrupt(image_dir, f"{shown} changed size since import")
    if expected.checks & CHECK_OWNER and (info.st_uid, info.st_gid) != (expected.uid, expected.gid):
        raise _corrupt(image_dir, f"{shown} changed owner since import")
    if expected.checks & CHECK_MODE and stat.S_IMODE(info.st_mode) != expected.mode:
        raise _corrupt(image_dir, f"{shown} changed mode since import")
    if expected.checks & CHECK_MTIME and info.st_mtime_ns != expected.mtime_ns:
        raise _corrupt(image_dir, f"{shown} changed mtime since import")


def _replay_file(image_dir: Path, relative: bytes, expected: _Expected, view: memoryview, emit) -> None:  # type: ignore[no-untyped-def]
    path = os.path.join(os.fsencode(image_dir), relative)
    shown = relative.decode("utf-8", "backslashreplace")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _corrupt(image_dir, f"cannot open {shown}: {exc.strerror}") from exc
    try:
        _check_meta(image_dir, shown, os.fstat(fd), expected)
        remaining = expected.size
        while remaining:
            got = os.readv(fd, [view[: min(remaining, len(view))]])
            if not got:
                raise _corrupt(image_dir, f"{shown} is shorter than at import")
            emit(view[:got])
            remaining -= got
    finally:
        os.close(fd)
