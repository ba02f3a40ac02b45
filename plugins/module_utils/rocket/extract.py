"""Safe extraction of an image archive into a private staging folder, in one streaming pass.

Nothing is ever written outside the staging folder. The rules, each with its own `rule` tag:
- names are relative and have no `..` component (`absolute-path`, `dot-dot`);
- the archive holds exactly `manifest` (a regular file of at most 1 MiB) and `rootfs/` (`layout`,
  `manifest-missing`, `manifest-size`, `manifest-type`);
- no entry is written through a symlink, and no entry replaces another (`through-symlink`,
  `not-a-directory`, `duplicate`): every parent of an entry must be a folder this extraction made;
- a hard link must name an earlier regular file or symlink inside `rootfs/` (`hardlink`);
- device nodes and FIFOs are not created, the runtime provides /dev (reported as a warning);
- the whole uncompressed archive and its entry count are bounded (`max-size`, `max-entries`).

Ownership (numeric), modes including setuid, mtimes and `user.*`/`security.capability` xattrs are kept.
The staging folder is trusted only because this process is the only writer inside it: the store makes
it 0700 under its own tmp/ and holds a lock on it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, List, Set, Tuple

from .errors import ImageError, StoreError
from .limits import ImportLimits
from .skeleton import CHECK_MODE, CHECK_MTIME, CHECK_OWNER, SkeletonWriter
from .tarstream import (
    BLOCKDEV,
    CHARDEV,
    DIRECTORY,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TYPE_NAMES,
    HashingReader,
    TarEntry,
    iter_entries,
)

MAX_MANIFEST_SIZE = 1 << 20
MAX_COMPONENT = 255
KEPT_XATTR_PREFIXES = ("user.", "security.capability")


@dataclass
class Extraction:
    """What a finished extraction produced."""

    image_id: str
    manifest: bytes
    size: int
    entries: int
    warnings: List[str] = field(default_factory=list)


def normalize_name(raw: bytes, *, what: str = "entry", member: str = "") -> Tuple[bytes, ...]:
    """Split an archive member name (or a link target of `member`) into components, rejecting
    absolute paths and `..`."""
    shown = raw.decode("utf-8", "backslashreplace")
    member = member or shown
    if raw.startswith(b"/"):
        raise ImageError(f"{what} {shown!r} is an absolute path", entry=member, rule="absolute-path")
    parts = tuple(part for part in raw.split(b"/") if part not in (b"", b"."))
    if b".." in parts:
        raise ImageError(f"{what} {shown!r} contains '..'", entry=member, rule="dot-dot")
    if any(len(part) > MAX_COMPONENT for part in parts):
        raise ImageError(f"{what} {shown!r} has a component over {MAX_COMPONENT} bytes", entry=member, rule="name")
    return parts


class _Extractor:
    """The state of one extraction: the folders it made, the deferred folder metadata, the warnings."""

    def __init__(self, staging: bytes, limits: ImportLimits) -> None:
        self.staging = staging
        self.limits = limits
        self.is_root = os.geteuid() == 0
        # Folders this extraction created: the only places entries may be written into.
        self.dirs: Set[Tuple[bytes, ...]] = {()}
        self.declared_dirs: Set[Tuple[bytes, ...]] = set()
        self.dir_meta: Dict[Tuple[bytes, ...], TarEntry] = {}
        self.manifest: bytes = b""
        self.have_manifest = False
        self.entries = 0
        self.skipped_nodes: List[str] = []
        # Paths of device nodes and FIFOs not created: they still count as taken.
        self.skipped_paths: Set[Tuple[bytes, ...]] = set()
        self.dropped_xattrs: Set[str] = set()

    def path(self, parts: Tuple[bytes, ...]) -> bytes:
        return b"/".join((self.staging,) + parts)

    def ensure_parents(self, parts: Tuple[bytes, ...], shown: str) -> None:
        """Make sure every parent of `parts` is a folder this extraction made, creating missing ones."""
        for depth in range(1, len(parts)):
            prefix = parts[:depth]
            if prefix in self.dirs:
                continue
            if prefix in self.skipped_paths:
                where = b"/".join(prefix).decode("utf-8", "backslashreplace")
                raise ImageError(
                    f"entry {shown!r} would be written beneath {where!r}, which is a device node or FIFO",
                    entry=shown,
                    rule="not-a-directory",
                )
            path = self.path(prefix)
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                kind = "a symlink" if os.path.islink(path) else "not a directory"
                rule = "through-symlink" if kind == "a symlink" else "not-a-directory"
                where = b"/".join(prefix).decode("utf-8", "backslashreplace")
                raise ImageError(
                    f"entry {shown!r} would be written through {where!r}, which is {kind}",
                    entry=shown,
                    rule=rule,
                ) from None
            self.dirs.add(prefix)

    def check_layout(self, parts: Tuple[bytes, ...], entry: TarEntry, shown: str) -> None:
        if not parts:
            if entry.type != DIRECTORY:
                raise ImageError(f"entry {shown!r} names the archive root", entry=shown, rule="layout")
            return
        top = parts[0]
        if top == b"manifest" and len(parts) == 1:
            if entry.type != REGULAR:
                raise ImageError(
                    f"'manifest' is a {TYPE_NAMES[entry.type]}, it must be a regular file",
                    entry=shown,
                    rule="manifest-type",
                )
            if self.have_manifest:
                raise ImageError("archive has two 'manifest' entries", entry=shown, rule="duplicate")
            if entry.size > MAX_MANIFEST_SIZE:
                raise ImageError(
                    f"'manifest' is {entry.size} bytes, over the limit of {MAX_MANIFEST_SIZE}",
                    entry=shown,
                    rule="manifest-size",
                )
            return
        if top != b"rootfs":
            raise ImageError(
                f"entry {shown!r} is outside 'manifest' and 'rootfs/'",
                entry=shown,
                rule="layout",
                hint="an ACI holds exactly a 'manifest' file and a 'rootfs/' folder",
            )
        if len(parts) == 1 and entry.type != DIRECTORY:
            raise ImageError("'rootfs' must be a directory", entry=shown, rule="layout")

    def add(self, entry: TarEntry, reader: HashingReader, sink: SkeletonWriter) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ImageError(
                f"archive has more than {self.limits.max_entries} entries",
                rule="max-entries",
                hint="raise the limit (--max-image-entries) if this image really has that many files",
            )
        parts = normalize_name(entry.name)
        shown = entry.display_name
        self.check_layout(parts, entry, shown)
        if not parts:
            return  # the archive's own "./" entry: nothing to create
        if parts == (b"manifest",):
            self.manifest = reader.read_exact(entry.size, what="manifest")
            self.write_file(parts, entry, data=self.manifest)
            sink.file(b"manifest", entry.size)
            self.have_manifest = True
            return
        self.ensure_parents(parts, shown)
        if entry.type == REGULAR:
            self.extract_file(parts, entry, reader, shown)
            checks = CHECK_MODE | CHECK_MTIME | (CHECK_OWNER if self.is_root else 0)
            sink.file(
                b"/".join(parts),
                entry.size,
                checks=checks,
                mode=entry.mode,
                uid=entry.uid,
                gid=entry.gid,
                mtime_ns=entry.mtime_ns,
            )
        elif entry.type == DIRECTORY:
            self.extract_dir(parts, entry, shown)
        elif entry.type == SYMLINK:
            self.extract_symlink(parts, entry, shown)
        elif entry.type == HARDLINK:
            self.extract_hardlink(parts, entry, shown)
        elif entry.type in (CHARDEV, BLOCKDEV, FIFO):
            self.claim(parts, shown)
            self.skipped_paths.add(parts)
            self.skipped_nodes.append(shown)
        else:
            raise AssertionError(f"bug: unhandled entry type {entry.type!r}")

    def claim(self, parts: Tuple[bytes, ...], shown: str) -> None:
        """Refuse a second entry at a path that an earlier entry already holds."""
        if parts in self.dirs or parts in self.skipped_paths or os.path.lexists(self.path(parts)):
            raise ImageError(f"entry {shown!r} appears twice in the archive", entry=shown, rule="duplicate")

    def open_new(self, parts: Tuple[bytes, ...], shown: str) -> int:
        if parts in self.dirs or parts in self.skipped_paths:
            raise ImageError(f"entry {shown!r} appears twice in the archive", entry=shown, rule="duplicate")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(self.path(parts), flags, 0o600)
        except FileExistsError:
            raise ImageError(f"entry {shown!r} appears twice in the archive", entry=shown, rule="duplicate") from None

    def extract_file(self, parts: Tuple[bytes, ...], entry: TarEntry, reader: HashingReader, shown: str) -> None:
        fd = self.open_new(parts, shown)
        try:
            reader.copy_to_fd(fd, entry.size, what=shown)
            self.apply_meta(fd, entry, shown)
        finally:
            os.close(fd)

    def write_file(self, parts: Tuple[bytes, ...], entry: TarEntry, *, data: bytes) -> None:
        fd = self.open_new(parts, "manifest")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)

    def apply_meta(self, fd: int, entry: TarEntry, shown: str) -> None:
        """Owner first, then mode (chown clears setuid), xattrs, and mtime last."""
        if self.is_root:
            os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, entry.mode)
        self.set_xattrs(fd, entry, shown)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def set_xattrs(self, target: int | bytes, entry: TarEntry, shown: str, *, follow: bool = True) -> None:
        for name, value in entry.xattrs.items():
            if not name.startswith(KEPT_XATTR_PREFIXES):
                # trusted.* and security.* (but file capabilities) are host policy, not image content;
                # trusted.overlay.* in particular would steer the overlay mounts of pods.
                self.dropped_xattrs.add(name)
                continue
            try:
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EPERM):
                    self.dropped_xattrs.add(name)
                    continue
                raise ImageError(
                    f"cannot set xattr {name!r} on {shown!r}: {exc.strerror}", entry=shown, rule="xattr"
                ) from exc

    def extract_dir(self, parts: Tuple[bytes, ...], entry: TarEntry, shown: str) -> None:
        if parts in self.declared_dirs or parts in self.skipped_paths:
            raise ImageError(f"entry {shown!r} appears twice in the archive", entry=shown, rule="duplicate")
        if parts not in self.dirs:
            try:
                os.mkdir(self.path(parts), 0o700)
            except FileExistsError:
                raise ImageError(
                    f"entry {shown!r} appears twice in the archive", entry=shown, rule="duplicate"
                ) from None
            self.dirs.add(parts)
        self.declared_dirs.add(parts)
        self.dir_meta[parts] = entry

    def extract_symlink(self, parts: Tuple[bytes, ...], entry: TarEntry, shown: str) -> None:
        # A symlink may point anywhere: it is resolved inside the pod's root, never during extraction,
        # because no later entry may be written through it.
        self.claim(parts, shown)
        path = self.path(parts)
        os.symlink(entry.linkname, path)
        if self.is_root:
            os.lchown(path, entry.uid, entry.gid)
        self.set_xattrs(path, entry, shown, follow=False)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)

    def extract_hardlink(self, parts: Tuple[bytes, ...], entry: TarEntry, shown: str) -> None:
        target = normalize_name(entry.linkname, what=f"hard link {shown!r} target", member=shown)
        shown_target = entry.linkname.decode("utf-8", "backslashreplace")
        if len(target) < 2 or target[0] != b"rootfs":
            raise ImageError(
                f"hard link {shown!r} points outside rootfs/ at {shown_target!r}", entry=shown, rule="hardlink"
            )
        if any(target[:depth] not in self.dirs for depth in range(1, len(target))):
            raise ImageError(
                f"hard link {shown!r} points at {shown_target!r}, which is not an earlier entry",
                entry=shown,
                rule="hardlink",
            )
        try:
            target_stat = os.lstat(self.path(target))
        except FileNotFoundError:
            raise ImageError(
                f"hard link {shown!r} points at {shown_target!r}, which is not an earlier entry",
                entry=shown,
                rule="hardlink",
            ) from None
        if not (stat.S_ISREG(target_stat.st_mode) or stat.S_ISLNK(target_stat.st_mode)):
            raise ImageError(
                f"hard link {shown!r} points at {shown_target!r}, which is not a file", entry=shown, rule="hardlink"
            )
        self.claim(parts, shown)
        os.link(self.path(target), self.path(parts), follow_symlinks=False)

    def finish_dirs(self) -> None:
        """Apply folder metadata deepest first, after their content exists (a 0555 folder is read-only)."""
        for parts in sorted(self.dir_meta, key=len, reverse=True):
            entry = self.dir_meta[parts]
            path = self.path(parts)
            shown = entry.display_name
            if self.is_root:
                os.lchown(path, entry.uid, entry.gid)
            os.chmod(path, entry.mode)
            self.set_xattrs(path, entry, shown)
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))

    def warnings(self) -> List[str]:
        notes = []
        if self.skipped_nodes:
            listed = ", ".join(self.skipped_nodes[:5]) + (" …" if len(self.skipped_nodes) > 5 else "")
            notes.append(
                f"did not create {len(self.skipped_nodes)} device node(s) or FIFO(s) ({listed}): "
                "the runtime provides /dev"
            )
        if self.dropped_xattrs:
            notes.append("dropped extended attributes not kept by rocket: " + ", ".join(sorted(self.dropped_xattrs)))
        return notes


def extract_archive(stream: BinaryIO, staging: str, skeleton: BinaryIO, *, limits: ImportLimits) -> Extraction:
    """Hash, check and extract the uncompressed tar `stream` into the empty folder `staging`.

    Writes the skeleton of the archive to `skeleton`. The manifest is returned unparsed; the caller
    validates it. Raises ImageError for anything the archive may not do.
    """
    reader = HashingReader(stream, max_size=limits.max_size)
    sink = SkeletonWriter(skeleton)
    extractor = _Extractor(os.fsencode(staging), limits)
    try:
        for entry in iter_entries(reader, sink):
            extractor.add(entry, reader, sink)
        if not extractor.have_manifest:
            raise ImageError("archive has no 'manifest' entry", entry="manifest", rule="manifest-missing")
        if (b"rootfs",) not in extractor.dirs:
            os.mkdir(extractor.path((b"rootfs",)), 0o755)
        extractor.finish_dirs()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
            raise StoreError(
                f"cannot write the image into the store: {exc.strerror}",
                hint="free space on the store's file system, then try again",
            ) from exc
        raise ImageError(
            f"cannot extract {os.fsdecode(exc.filename or b'') or 'an entry'}: {exc.strerror}",
            rule="extract",
        ) from exc
    sink.close()
    return Extraction(
        image_id=reader.image_id(),
        manifest=extractor.manifest,
        size=reader.read_total,
        entries=extractor.entries,
        warnings=extractor.warnings(),
    )


class _NullSink:
    def raw(self, data: bytes) -> None:
        pass

    def zeros(self, count: int) -> None:
        pass


def peek_manifest(stream: BinaryIO, *, limits: ImportLimits) -> bytes:
    """The raw manifest of an archive, reading only as far as its `manifest` entry (usually the first).

    Fetch uses it to learn an image's name, and so which keys and policy apply, before importing.
    """
    reader = HashingReader(stream, max_size=limits.max_size)
    for entry in iter_entries(reader, _NullSink()):
        if normalize_name(entry.name) == (b"manifest",):
            if entry.type != REGULAR or entry.size > MAX_MANIFEST_SIZE:
                break
            return reader.read_exact(entry.size, what="manifest")
        reader.skip(entry.size, what=entry.display_name)
    raise ImageError("archive has no 'manifest' entry", entry="manifest", rule="manifest-missing")
