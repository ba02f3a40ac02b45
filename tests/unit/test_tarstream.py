"""The tar reader: every format tarfile writes parses to the same entries, and replays byte for byte."""

from __future__ import annotations

import hashlib
import io
import tarfile
from typing import List, Tuple

import pytest

from rocket.errors import ImageError
from rocket.skeleton import SkeletonWriter
from rocket.tarstream import DIRECTORY, REGULAR, SYMLINK, HashingReader, TarEntry, iter_entries

LONG = "rootfs/" + "/".join(["d" * 60] * 5) + "/file"


def make_tar(fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for name, kind, data, extra in [
            ("rootfs", tarfile.DIRTYPE, b"", {}),
            ("rootfs/small", tarfile.REGTYPE, b"hello", {"mode": 0o4755, "uid": 3, "gid": 4}),
            (LONG, tarfile.REGTYPE, b"x" * 1000, {}),
            ("rootfs/link", tarfile.SYMTYPE, b"", {"linkname": "/" + "l" * 150}),
            ("rootfs/bigid", tarfile.REGTYPE, b"", {"uid": 10_000_000}),
        ]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data)
            info.mtime = 1_700_000_000
            for key, value in extra.items():
                setattr(info, key, value)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Recorder:
    def __init__(self) -> None:
        self.parts: List[Tuple[str, object]] = []

    def raw(self, data: bytes) -> None:
        self.parts.append(("raw", data))

    def zeros(self, count: int) -> None:
        self.parts.append(("zeros", count))


def read_all(data: bytes, *, max_size: int = 1 << 30) -> Tuple[List[Tuple[TarEntry, bytes]], HashingReader, Recorder]:
    reader = HashingReader(io.BytesIO(data), max_size=max_size)  # type: ignore[arg-type]
    sink = Recorder()
    entries = []
    for entry in iter_entries(reader, sink):
        content = reader.read_exact(entry.size, what=entry.display_name) if entry.size else b""
        sink.parts.append(("data", content))
        entries.append((entry, content))
    return entries, reader, sink


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_formats_parse_alike_and_hash_everything(fmt: int) -> None:
    data = make_tar(fmt)
    entries, reader, sink = read_all(data)
    names = [e.name.decode().rstrip("/") for e, _ in entries]
    assert names == ["rootfs", "rootfs/small", LONG, "rootfs/link", "rootfs/bigid"]
    assert [e.type for e, _ in entries] == [DIRECTORY, REGULAR, REGULAR, SYMLINK, REGULAR]
    small = entries[1][0]
    assert (small.mode, small.uid, small.gid, small.mtime_ns) == (0o4755, 3, 4, 1_700_000_000 * 10**9)
    assert entries[2][1] == b"x" * 1000
    assert entries[3][0].linkname == b"/" + b"l" * 150
    assert entries[4][0].uid == 10_000_000
    assert reader.image_id() == "sha512-" + hashlib.sha512(data).hexdigest()
    # Raw parts, data and zeros concatenate back to the exact archive.
    rebuilt = b"".join(p if kind != "zeros" else bytes(p) for kind, p in sink.parts)  # type: ignore[misc,arg-type]
    assert rebuilt == data


def test_ustar_prefix_field_joins_long_names() -> None:
    name = "rootfs/" + "p" * 120 + "/" + "n" * 80
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    assert read_all(out.getvalue())[0][0][0].name.decode() == name


def test_pax_xattrs_and_fractional_mtime() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("rootfs/f")
        info.pax_headers = {"SCHILY.xattr.user.note": "v", "mtime": "1700000000.5"}
        archive.addfile(info, io.BytesIO(b""))
    ((entry, _),) = read_all(out.getvalue())[0]
    assert entry.xattrs == {"user.note": b"v"}
    assert entry.mtime_ns == 1_700_000_000_500_000_000


def corrupt(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda d: corrupt(d, 148, b"0000000\x00"), "header"),  # checksum
        (lambda d: d[:700], "truncated"),
        (lambda d: d + b"garbage", "trailing-data"),
        (lambda d: b"not a tar at all" * 64, "header"),
    ],
    ids=["checksum", "truncated", "trailing", "not-tar"],
)
def test_malformed_streams(mutate, rule: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImageError) as caught:
        read_all(mutate(make_tar(tarfile.GNU_FORMAT)))
    assert caught.value.rule == rule


def test_size_limit_counts_uncompressed_bytes() -> None:
    with pytest.raises(ImageError) as caught:
        read_all(make_tar(tarfile.PAX_FORMAT), max_size=2048)
    assert caught.value.rule == "max-size"


def test_skeleton_writer_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rocket.skeleton import replay

    data = make_tar(tarfile.PAX_FORMAT)
    image = tmp_path / "image"
    image.mkdir()
    with open(image / "skeleton", "wb") as stream:
        writer = SkeletonWriter(stream)
        reader = HashingReader(io.BytesIO(data), max_size=1 << 30)  # type: ignore[arg-type]
        for count, entry in enumerate(iter_entries(reader, writer)):
            if entry.size:
                (image / f"f{count}").write_bytes(reader.read_exact(entry.size, what="x"))
                writer.file(f"f{count}".encode(), entry.size)
        writer.close()
    out = io.BytesIO()
    assert replay(image, out) == reader.image_id()
    assert out.getvalue() == data
