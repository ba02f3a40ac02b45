"""A strict, streaming reader of tar archives that hashes every byte it consumes.

rocket reads image archives with its own parser rather than `tarfile` for three reasons: the image ID
is the SHA-512 of the exact uncompressed byte stream, so every byte must pass through one hash; the raw
header bytes are kept (see skeleton.py) so that an image can be exported bit for bit without storing
its archive twice; and ambiguities that different tar readers resolve differently (data behind a
directory header, sparse files, bytes after the end marker) are rejected instead of guessed.

Supported: ustar, GNU long names (`L`, `K`), POSIX pax extended headers (`x`, and `g` globals).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, Optional, Protocol

from .compression import DECOMPRESSION_ERRORS
from .errors import ImageError

BLOCK = 512
CHUNK = 1 << 20
MAX_PAX_SIZE = 1 << 20
MAX_NAME_SIZE = 4096
MAX_ID = 0xFFFFFFFE  # (uid_t)-1 means "unchanged" to chown
MAX_MTIME_NS = (1 << 63) - 1
_NO_PAX: Dict[bytes, bytes] = {}

REGULAR = b"0"
HARDLINK = b"1"
SYMLINK = b"2"
CHARDEV = b"3"
BLOCKDEV = b"4"
DIRECTORY = b"5"
FIFO = b"6"
ENTRY_TYPES = {
    b"0": REGULAR,
    b"\x00": REGULAR,
    b"7": REGULAR,  # contiguous file: a regular file everywhere that matters
    b"1": HARDLINK,
    b"2": SYMLINK,
    b"3": CHARDEV,
    b"4": BLOCKDEV,
    b"5": DIRECTORY,
    b"6": FIFO,
}
TYPE_NAMES = {
    REGULAR: "regular file",
    HARDLINK: "hard link",
    SYMLINK: "symlink",
    CHARDEV: "character device",
    BLOCKDEV: "block device",
    DIRECTORY: "directory",
    FIFO: "FIFO",
}


class SkeletonSink(Protocol):
    """Receives the bytes of the archive that are not file data (see skeleton.py)."""

    def raw(self, data: bytes) -> None: ...

    def zeros(self, count: int) -> None: ...


@dataclass
class TarEntry:
    """One archive member after its extension headers have been applied."""

    name: bytes
    type: bytes
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: Dict[str, bytes] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.name.decode("utf-8", "backslashreplace")


class HashingReader:
    """Reads an uncompressed tar stream in 1 MiB chunks, hashing and counting every byte it reads.

    Headers, padding and small files are served as slices of the current chunk, so a tree of many small
    files costs one read and one hash update per MiB, not several per entry.
    """

    def __init__(self, stream: BinaryIO, *, max_size: int) -> None:
        self._stream = stream
        self._hash = hashlib.sha512()
        self._buffer = bytearray(CHUNK)
        self._view = memoryview(self._buffer)
        self._start = 0  # the unread bytes of the chunk are _buffer[_start:_end]
        self._end = 0
        self.read_total = 0  # bytes read from the stream (and hashed)
        self.max_size = max_size

    @property
    def count(self) -> int:
        """Bytes handed out so far: the offset of the next byte in the archive."""
        return self.read_total - (self._end - self._start)

    def image_id(self) -> str:
        """The image ID of everything read so far (the whole archive once the reader is exhausted)."""
        return "sha512-" + self._hash.hexdigest()

    def _refill(self) -> int:
        """Read the next chunk once the current one is used up; 0 at the end of the stream."""
        got = 0
        while got < CHUNK:
            try:
                n = self._stream.readinto(self._view[got:])  # type: ignore[attr-defined]
            except DECOMPRESSION_ERRORS as exc:
                raise ImageError(
                    f"archive is corrupt: cannot decompress after byte {self.read_total + got}: {exc}",
                    rule="compression",
                    hint="the file is damaged or truncated; fetch it again",
                ) from exc
            if not n:
                break
            got += n
        self.read_total += got
        if self.read_total > self.max_size:
            raise ImageError(
                f"archive exceeds the size limit of {self.max_size} bytes once uncompressed",
                rule="max-size",
                hint="raise the limit (--max-image-size) if this image is really that large",
            )
        self._hash.update(self._view[:got])
        self._start, self._end = 0, got
        return got

    def _truncated(self, what: str) -> ImageError:
        return ImageError(
            f"archive is truncated inside {what}",
            entry=what,
            rule="truncated",
            hint="the file is damaged or incomplete; fetch it again",
        )

    def read_exact(self, size: int, *, what: str) -> bytes:
        """Read exactly `size` bytes or fail naming `what` was truncated."""
        if self._end - self._start >= size:
            data = bytes(self._view[self._start : self._start + size])
            self._start += size
            return data
        parts = bytearray()
        while len(parts) < size:
            if self._start == self._end and not self._refill():
                raise self._truncated(what)
            take = min(size - len(parts), self._end - self._start)
            parts += self._view[self._start : self._start + take]
            self._start += take
        return bytes(parts)

    def read_block_or_eof(self) -> Optional[bytes]:
        """Read one 512-byte header block; None at a clean end of stream."""
        if self._start == self._end and not self._refill():
            return None
        return self.read_exact(BLOCK, what="a header")

    def copy_to_fd(self, fd: int, size: int, *, what: str) -> None:
        """Stream `size` bytes of entry data into `fd`, in writes as large as the chunks."""
        remaining = size
        while remaining:
            if self._start == self._end and not self._refill():
                raise self._truncated(what)
            take = min(remaining, self._end - self._start)
            chunk = self._view[self._start : self._start + take]
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
            self._start += take
            remaining -= take

    def skip(self, size: int, *, what: str) -> None:
        """Read past `size` bytes of entry data."""
        remaining = size
        while remaining:
            if self._start == self._end and not self._refill():
                raise self._truncated(what)
            take = min(remaining, self._end - self._start)
            self._start += take
            remaining -= take

    def drain_zeros(self) -> int:
        """Consume the rest of the stream, which must be zero bytes; return how many there were."""
        total = 0
        while True:
            if self._start == self._end and not self._refill():
                return total
            if any(self._view[self._start : self._end].tobytes()):
                raise ImageError(
                    "archive has data after its end-of-archive marker",
                    rule="trailing-data",
                    hint="rebuild the image; only zero padding may follow the end marker",
                )
            total += self._end - self._start
            self._start = self._end


def _parse_number(field_bytes: bytes, *, what: str, name: str) -> int:
    """Decode a numeric header field: octal ASCII, or GNU base-256 when the top bit is set."""
    if field_bytes and field_bytes[0] & 0x80:
        if field_bytes[0] == 0xFF:
            raise ImageError(f"entry {name!r} has a negative {what}", entry=name, rule="header")
        return int.from_bytes(bytes([field_bytes[0] & 0x7F]) + field_bytes[1:], "big")
    try:
        return int(field_bytes.rstrip(b" \x00") or b"0", 8)
    except ValueError:
        pass
    text = field_bytes.replace(b"\x00", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ImageError(f"entry {name!r} has a malformed {what} field {text!r}", entry=name, rule="header") from None


def _cstring(field_bytes: bytes) -> bytes:
    end = field_bytes.find(b"\x00")
    return field_bytes if end < 0 else field_bytes[:end]


def _check_checksum(block: bytes, *, offset: int) -> None:
    stored = block[148:156].replace(b"\x00", b" ").strip()
    try:
        expected = int(stored, 8)
    except ValueError:
        raise ImageError(
            f"not a tar archive: bad header checksum field at byte {offset}",
            rule="header",
            hint="the file is not an ACI, or it is damaged",
        ) from None
    # The checksum field itself counts as eight spaces (8 * 32 = 256).
    unsigned = sum(block) - sum(block[148:156]) + 256
    if expected == unsigned:
        return
    # Some old tars summed signed chars: each byte >= 0x80 then counts 256 less.
    high = sum(1 for b in block[:148] + block[156:] if b >= 0x80)
    if expected != unsigned - 256 * high:
        raise ImageError(
            f"not a tar archive: header checksum mismatch at byte {offset}",
            rule="header",
            hint="the file is not an ACI, or it is damaged",
        )


def _parse_pax(data: bytes, *, name: str) -> Dict[bytes, bytes]:
    """Parse pax records `LEN KEY=VALUE\\n` as bytes (xattr values may be binary)."""
    records: Dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos:].strip(b"\x00") == b"":
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise ImageError(f"malformed pax header near {name!r}", entry=name, rule="header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise ImageError(f"malformed pax record length near {name!r}", entry=name, rule="header") from None
        record = data[space + 1 : pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise ImageError(f"malformed pax record near {name!r}", entry=name, rule="header")
        key, _equals, value = record[:-1].partition(b"=")
        records[key] = value
        pos += length
    return records


def _pax_number(value: bytes, *, key: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ImageError(f"entry {name!r} has a malformed pax {key} {value!r}", entry=name, rule="header") from None
    if number < 0:
        raise ImageError(f"entry {name!r} has a negative pax {key}", entry=name, rule="header")
    return number


def _pax_time_ns(value: bytes, *, name: str) -> int:
    text = value.decode("ascii", "replace")
    whole, _dot, frac = text.partition(".")
    try:
        seconds = int(whole)
        nanos = int((frac + "000000000")[:9]) if frac else 0
    except ValueError:
        raise ImageError(f"entry {name!r} has a malformed pax mtime {text!r}", entry=name, rule="header") from None
    return seconds * 1_000_000_000 + (nanos if seconds >= 0 else -nanos)


def iter_entries(reader: HashingReader, sink: SkeletonSink) -> Iterator[TarEntry]:
    """Yield each member; the caller must consume exactly `entry.size` data bytes before resuming.

    Header bytes, padding and the end marker go to `sink`. Padding after an entry's data is read
    when the caller resumes the iterator.
    """
    global_pax: Dict[bytes, bytes] = {}
    pending_pax: Dict[bytes, bytes] = {}
    long_name: Optional[bytes] = None
    long_link: Optional[bytes] = None
    pending_pad = 0
    while True:
        if pending_pad:
            sink.raw(reader.read_exact(pending_pad, what="padding"))
            pending_pad = 0
        offset = reader.count
        block = reader.read_block_or_eof()
        if block is None:
            # A stream that stops between entries without the end marker was cut short.
            raise ImageError(
                "archive is truncated: it ends without an end-of-archive marker",
                rule="truncated",
                hint="the file is damaged or incomplete; fetch it again",
            )
        if block == bytes(BLOCK):
            if pending_pax or long_name is not None or long_link is not None:
                raise ImageError("archive ends after an extension header", rule="truncated")
            sink.zeros(BLOCK + reader.drain_zeros())
            return
        _check_checksum(block, offset=offset)
        raw_name = _cstring(block[0:100])
        typeflag = block[156:157]
        shown = raw_name.decode("utf-8", "backslashreplace")
        size = _parse_number(block[124:136], what="size", name=shown)
        padded = (size + BLOCK - 1) // BLOCK * BLOCK

        if typeflag in (b"x", b"g", b"L", b"K"):
            limit = MAX_NAME_SIZE if typeflag in (b"L", b"K") else MAX_PAX_SIZE
            if size > limit:
                raise ImageError(
                    f"extension header before {shown!r} is {size} bytes, over the limit of {limit}",
                    entry=shown,
                    rule="header-size",
                )
            payload = reader.read_exact(padded, what=f"extension header of {shown!r}")
            sink.raw(block + payload)
            payload = payload[:size]
            if typeflag == b"x":
                pending_pax.update(_parse_pax(payload, name=shown))
            elif typeflag == b"g":
                global_pax.update(_parse_pax(payload, name=shown))
            elif typeflag == b"L":
                long_name = _cstring(payload)
            else:
                long_link = _cstring(payload)
            continue

        sink.raw(block)
        if global_pax or pending_pax:
            pax = dict(global_pax)
            pax.update(pending_pax)
            pending_pax = {}
        else:
            pax = _NO_PAX
        if typeflag == b"S" or (pax and any(key.startswith(b"GNU.sparse.") for key in pax)):
            raise ImageError(
                f"entry {shown!r} is a sparse file, which rocket does not accept", entry=shown, rule="sparse"
            )
        entry_type = ENTRY_TYPES.get(typeflag)
        if entry_type is None:
            raise ImageError(f"entry {shown!r} has unsupported type {typeflag!r}", entry=shown, rule="entry-type")

        magic = block[257:263]
        name = raw_name
        if magic == b"ustar\x00":
            prefix = _cstring(block[345:500])
            if prefix:
                name = prefix + b"/" + raw_name
        if long_name is not None:
            name = long_name
        if b"path" in pax:
            name = pax[b"path"]
        linkname = _cstring(block[157:257])
        if long_link is not None:
            linkname = long_link
        if b"linkpath" in pax:
            linkname = pax[b"linkpath"]
        long_name = long_link = None
        shown = name.decode("utf-8", "backslashreplace")
        if b"\x00" in name or b"\x00" in linkname or len(name) > MAX_NAME_SIZE or len(linkname) > MAX_NAME_SIZE:
            raise ImageError(f"entry {shown!r} has an invalid or over-long name", entry=shown, rule="name")

        if b"size" in pax:
            size = _pax_number(pax[b"size"], key="size", name=shown)
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if entry_type != REGULAR and size != 0:
            # Readers disagree on whether such data exists; accepting it would let two tools see two trees.
            raise ImageError(
                f"entry {shown!r} is a {TYPE_NAMES[entry_type]} but claims {size} bytes of data",
                entry=shown,
                rule="header",
            )
        mtime_ns = _parse_number(block[136:148], what="mtime", name=shown) * 1_000_000_000
        if b"mtime" in pax:
            mtime_ns = _pax_time_ns(pax[b"mtime"], name=shown)
        uid = _parse_number(block[108:116], what="uid", name=shown)
        gid = _parse_number(block[116:124], what="gid", name=shown)
        if b"uid" in pax:
            uid = _pax_number(pax[b"uid"], key="uid", name=shown)
        if b"gid" in pax:
            gid = _pax_number(pax[b"gid"], key="gid", name=shown)
        if uid > MAX_ID or gid > MAX_ID:
            raise ImageError(f"entry {shown!r} has an owner ID over {MAX_ID}", entry=shown, rule="header")
        if abs(mtime_ns) > MAX_MTIME_NS:
            raise ImageError(f"entry {shown!r} has an mtime out of range", entry=shown, rule="header")
        xattrs = (
            {
                key[len(b"SCHILY.xattr.") :].decode("utf-8", "surrogateescape"): value
                for key, value in pax.items()
                if key.startswith(b"SCHILY.xattr.")
            }
            if pax
            else {}
        )
        yield TarEntry(
            name=name,
            type=entry_type,
            size=size,
            mode=_parse_number(block[100:108], what="mode", name=shown) & 0o7777,
            uid=uid,
            gid=gid,
            mtime_ns=mtime_ns,
            linkname=linkname,
            devmajor=_parse_number(block[329:337], what="devmajor", name=shown),
            devminor=_parse_number(block[337:345], what="devminor", name=shown),
            xattrs=xattrs,
        )
        pending_pad = padded - size
