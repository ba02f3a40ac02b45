"""Tar archives crafted byte by byte, for tests that need archives `tarfile` would refuse to write.

Every function returns raw bytes, so a test can put anything anywhere: absolute names, `..`, a
directory header that claims data, a bad checksum, bytes after the end marker. Members are built with
`regular`, `directory`, `symlink`, `hardlink`, `device` (or the lower-level `header` and `member`),
extension headers with `pax` and `gnu_long_name`/`gnu_long_link`, and a whole image with `make_aci`.

    make_aci([regular("rootfs/etc/hostname", b"box\\n"), symlink("rootfs/bin", "usr/bin")])

This is a helper library, not a test file; it imports nothing from the engine so that it cannot share
the engine's mistakes.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from typing import Any, Dict, Iterable, Optional, Union

BLOCK = 512
END_MARKER = bytes(2 * BLOCK)

Name = Union[str, bytes]

# Type flags (POSIX ustar, pax and GNU).
REGULAR = b"0"
HARDLINK = b"1"
SYMLINK = b"2"
CHARDEV = b"3"
BLOCKDEV = b"4"
DIRECTORY = b"5"
FIFO = b"6"
PAX = b"x"
PAX_GLOBAL = b"g"
GNU_LONG_NAME = b"L"
GNU_LONG_LINK = b"K"
GNU_SPARSE = b"S"

USTAR_MAGIC = b"ustar\x0000"
GNU_MAGIC = b"ustar  \x00"

VALID_MANIFEST_OBJ: Dict[str, object] = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": "example.com/test",
    "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
    "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
}
VALID_MANIFEST = json.dumps(VALID_MANIFEST_OBJ).encode()


def manifest_for(name: str, **labels: str) -> bytes:
    """A valid image manifest with another name and extra labels (so two images get two IDs)."""
    obj = json.loads(VALID_MANIFEST)
    obj["name"] = name
    obj["labels"] += [{"name": key, "value": value} for key, value in labels.items()]
    return json.dumps(obj).encode()


def _bytes(value: Name) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def _field(value: bytes, width: int, *, what: str) -> bytes:
    if len(value) > width:
        raise ValueError(f"{what} {value!r} does not fit in {width} bytes; use pax() or gnu_long_name()")
    return value.ljust(width, b"\x00")


def _number(value: int, width: int, *, what: str) -> bytes:
    """Octal digits and a NUL, or GNU base-256 when the value does not fit (large sizes)."""
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value}")
    digits = b"%o" % value
    if len(digits) < width:
        return digits.rjust(width - 1, b"0") + b"\x00"
    if value >= 1 << (8 * width - 1):
        raise ValueError(f"{what} {value} does not fit in {width} bytes")
    encoded = bytearray(value.to_bytes(width, "big"))
    encoded[0] |= 0x80
    return bytes(encoded)


def checksum(block: bytes) -> int:
    """The ustar checksum: the sum of all bytes with the checksum field counted as spaces."""
    return sum(block[:148]) + 8 * 0x20 + sum(block[156:BLOCK])


def header(
    name: Name,
    *,
    typeflag: bytes = REGULAR,
    size: int = 0,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: int = 1_500_000_000,
    linkname: Name = b"",
    prefix: Name = b"",
    devmajor: int = 0,
    devminor: int = 0,
    magic: bytes = USTAR_MAGIC,
    bad_checksum: bool = False,
) -> bytes:
    """One 512-byte ustar header block with any field values (nothing is checked but the widths)."""
    block = bytearray(BLOCK)
    block[0:100] = _field(_bytes(name), 100, what="name")
    block[100:108] = _number(mode, 8, what="mode")
    block[108:116] = _number(uid, 8, what="uid")
    block[116:124] = _number(gid, 8, what="gid")
    block[124:136] = _number(size, 12, what="size")
    block[136:148] = _number(mtime, 12, what="mtime")
    block[156:157] = _field(typeflag, 1, what="type flag")
    block[157:257] = _field(_bytes(linkname), 100, what="linkname")
    block[257:265] = _field(magic, 8, what="magic")
    block[265:297] = _field(b"root", 32, what="uname")
    block[297:329] = _field(b"root", 32, what="gname")
    block[329:337] = _number(devmajor, 8, what="devmajor")
    block[337:345] = _number(devminor, 8, what="devminor")
    block[345:500] = _field(_bytes(prefix), 155, what="prefix")
    value = checksum(bytes(block)) + (1 if bad_checksum else 0)
    block[148:156] = b"%06o\x00 " % value
    return bytes(block)


def patch_header(block: bytes, offset: int, raw: bytes) -> bytes:
    """A header block with `raw` written at `offset` and the checksum made right again."""
    patched = bytearray(block)
    patched[offset : offset + len(raw)] = raw
    patched[148:156] = b"%06o\x00 " % checksum(bytes(patched))
    return bytes(patched)


def padding(size: int) -> bytes:
    """The zero bytes that follow `size` bytes of data up to the next block boundary."""
    return bytes(-size % BLOCK)


def padded(data: bytes) -> bytes:
    """Data followed by its padding."""
    return data + padding(len(data))


def member(name: Name, data: bytes = b"", **fields: Any) -> bytes:
    """A header whose size is the length of `data`, then the data and its padding."""
    fields.setdefault("size", len(data))
    return header(name, **fields) + padded(data)


def regular(name: Name, data: bytes = b"", *, mode: int = 0o644, **fields: Any) -> bytes:
    return member(name, data, typeflag=REGULAR, mode=mode, **fields)


def directory(name: Name, *, mode: int = 0o755, **fields: Any) -> bytes:
    return member(name, typeflag=DIRECTORY, mode=mode, **fields)


def symlink(name: Name, target: Name, **fields: Any) -> bytes:
    return member(name, typeflag=SYMLINK, linkname=target, mode=0o777, **fields)


def hardlink(name: Name, target: Name, **fields: Any) -> bytes:
    return member(name, typeflag=HARDLINK, linkname=target, **fields)


def device(name: Name, *, major: int = 1, minor: int = 3, typeflag: bytes = CHARDEV, **fields: Any) -> bytes:
    """A character device (default: 1,3 which is /dev/null), block device or FIFO."""
    return member(name, typeflag=typeflag, devmajor=major, devminor=minor, mode=0o666, **fields)


def pax_record(key: Name, value: Name) -> bytes:
    """One `LEN KEY=VALUE\\n` record; LEN counts itself, so it is found by iteration."""
    body = b" " + _bytes(key) + b"=" + _bytes(value) + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body


def pax(records: Dict[str, Name], *, name: Name = "././@PaxHeader", typeflag: bytes = PAX) -> bytes:
    """A pax extended header ('x', or 'g' for a global one) that applies to the next member."""
    data = b"".join(pax_record(key, value) for key, value in records.items())
    return member(name, data, typeflag=typeflag, mode=0o644)


def gnu_long_name(name: Name) -> bytes:
    """A GNU 'L' entry: the next member's name is this one, whatever its own header says."""
    return member("././@LongLink", _bytes(name) + b"\x00", typeflag=GNU_LONG_NAME, magic=GNU_MAGIC)


def gnu_long_link(target: Name) -> bytes:
    """A GNU 'K' entry: the next member's link target is this one."""
    return member("././@LongLink", _bytes(target) + b"\x00", typeflag=GNU_LONG_LINK, magic=GNU_MAGIC)


def end_marker() -> bytes:
    """Two zero blocks: the end of a tar archive."""
    return END_MARKER


def make_aci(
    entries: Iterable[bytes],
    *,
    manifest: Optional[bytes] = VALID_MANIFEST,
    rootfs: bool = True,
    end: bytes = END_MARKER,
) -> bytes:
    """An uncompressed ACI: `manifest` (unless None), a `rootfs/` folder (unless False), the entries, `end`."""
    parts = []
    if manifest is not None:
        parts.append(regular("manifest", manifest))
    if rootfs:
        parts.append(directory("rootfs"))
    parts.extend(entries)
    parts.append(end)
    return b"".join(parts)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def bzip2_bytes(data: bytes) -> bytes:
    return bz2.compress(data, compresslevel=1)


def xz_bytes(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=0)


COMPRESSORS = {
    "none": lambda data: data,
    "gzip": gzip_bytes,
    "bzip2": bzip2_bytes,
    "xz": xz_bytes,
}


def compress(data: bytes, kind: str) -> bytes:
    """Compress with `none`, `gzip`, `bzip2` or `xz`."""
    return COMPRESSORS[kind](data)
