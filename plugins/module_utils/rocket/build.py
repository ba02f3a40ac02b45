"""Build an ACI from a folder holding `manifest` and `rootfs/`, reproducibly.

The same folder gives the same image ID: entries are written in sorted order as POSIX pax tar with
numeric owners and no user or group names, and mtimes are clamped to SOURCE_DATE_EPOCH when given
(the reproducible-builds convention), so a fresh copy of the same files builds the same image.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional, Tuple

from .errors import ImageError, UsageError
from .fileio import atomic_output
from .manifest import load_image_manifest

COMPRESSIONS = ("none", "gzip")


@dataclass
class BuildResult:
    image_id: str
    name: str
    entries: int
    warnings: List[str]


class _HashingWriter:
    """A write-only stream that hashes the uncompressed tar bytes on their way to the output."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha512()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def build_image(
    source: Path,
    output: Path,
    *,
    compression: str = "none",
    source_date_epoch: Optional[int] = None,
    overwrite: bool = False,
) -> BuildResult:
    """Write `output` from `source`/manifest and `source`/rootfs; returns the image ID."""
    if compression not in COMPRESSIONS:
        raise UsageError(f"unknown compression {compression!r}", hint="use one of: " + ", ".join(COMPRESSIONS))
    manifest_path, _rootfs = _check_source(source)
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists", hint="remove it or pass --overwrite")
    manifest = load_image_manifest(manifest_path.read_bytes(), where=str(manifest_path))

    warnings: List[str] = []
    with atomic_output(output) as raw:
        compressed: Optional[gzip.GzipFile] = None
        sink: BinaryIO = raw
        if compression == "gzip":
            compressed = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
            sink = compressed  # type: ignore[assignment]
        hasher = _HashingWriter(sink)
        entries = _write_tar(source, hasher, source_date_epoch, warnings)
        if compressed is not None:
            compressed.close()
    return BuildResult(
        image_id="sha512-" + hasher.digest.hexdigest(), name=str(manifest["name"]), entries=entries, warnings=warnings
    )


def build_id(source: Path, *, source_date_epoch: Optional[int] = None) -> str:
    """The image ID that build_image would give `source` now, computed without writing anything."""
    manifest_path, _rootfs = _check_source(source)
    load_image_manifest(manifest_path.read_bytes(), where=str(manifest_path))
    hasher = _HashingWriter(_NullSink())  # type: ignore[arg-type]
    _write_tar(source, hasher, source_date_epoch, [])
    return "sha512-" + hasher.digest.hexdigest()


class _NullSink:
    """Swallows the tar bytes: build_id only needs their hash."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return None


def _check_source(source: Path) -> Tuple[Path, Path]:
    """The folder's `manifest` and `rootfs/`, or UsageError saying which is missing."""
    manifest_path = source / "manifest"
    rootfs = source / "rootfs"
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise UsageError(f"{source} has no regular file 'manifest'", hint="put the image manifest at DIR/manifest")
    if not rootfs.is_dir() or rootfs.is_symlink():
        raise UsageError(f"{source} has no folder 'rootfs'", hint="put the image's files under DIR/rootfs/")
    return manifest_path, rootfs


def _write_tar(source: Path, out: _HashingWriter, epoch: Optional[int], warnings: List[str]) -> int:
    seen_inodes: Dict[Tuple[int, int], str] = {}
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        for relative in ["manifest", "rootfs"] + _sorted_walk(source / "rootfs", "rootfs"):
            path = source / relative
            info = path.lstat()
            mode = info.st_mode
            if stat.S_ISSOCK(mode):
                warnings.append(f"skipped socket {relative}")
                continue
            member = tarfile.TarInfo(relative)
            member.mode = stat.S_IMODE(mode)
            member.uid, member.gid = info.st_uid, info.st_gid
            member.uname = member.gname = ""
            member.mtime = int(info.st_mtime) if epoch is None else min(int(info.st_mtime), epoch)
            member.pax_headers = _xattr_headers(path)
            key = (info.st_dev, info.st_ino)
            if stat.S_ISREG(mode) and info.st_nlink > 1 and key in seen_inodes:
                member.type = tarfile.LNKTYPE
                member.linkname = seen_inodes[key]
                archive.addfile(member)
            elif stat.S_ISREG(mode):
                seen_inodes.setdefault(key, relative)
                member.size = info.st_size
                with open(path, "rb") as data:
                    archive.addfile(member, data)
            elif stat.S_ISDIR(mode):
                member.type = tarfile.DIRTYPE
                archive.addfile(member)
            elif stat.S_ISLNK(mode):
                member.type = tarfile.SYMTYPE
                member.linkname = os.readlink(path)
                archive.addfile(member)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                member.type = (
                    tarfile.CHRTYPE
                    if stat.S_ISCHR(mode)
                    else tarfile.BLKTYPE
                    if stat.S_ISBLK(mode)
                    else tarfile.FIFOTYPE
                )
                member.devmajor, member.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
                archive.addfile(member)
            count += 1
    return count


def _sorted_walk(folder: Path, prefix: str) -> List[str]:
    """Every path below `folder`, as `prefix/...`, in a fixed order (byte order, parents first)."""
    found: List[str] = []
    try:
        names = sorted(os.listdir(folder), key=os.fsencode)
    except OSError as exc:
        raise ImageError(f"cannot read {folder}: {exc.strerror}", entry=str(folder)) from exc
    for name in names:
        relative = f"{prefix}/{name}"
        found.append(relative)
        child = folder / name
        if child.is_dir() and not child.is_symlink():
            found.extend(_sorted_walk(child, relative))
    return found


def _xattr_headers(path: Path) -> Dict[str, str]:
    headers: Dict[str, str] = {}
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return headers
    for name in names:
        if name.startswith(("user.", "security.capability")):
            value = os.getxattr(path, name, follow_symlinks=False)
            headers["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return headers
