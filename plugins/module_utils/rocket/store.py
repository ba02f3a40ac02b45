"""The content-addressed image store: import, look up, remove, export and verify images.

An image lives once, extracted, under `cas/images/<image-id>/` (see paths.py and skeleton.py). Work
happens in `cas/tmp/<random>/`, guarded by an flock on `<random>.lock`, and becomes visible by one
rename plus one index row, both under the image's own lock. Any command that opens the store first
removes what a killed process left behind: work folders whose lock is free, image folders without a
row. So a crash at any point leaves the store as if the interrupted command had never run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .errors import ImageError, NotFoundError, StoreError, UsageError
from .fileio import fsync_dir, remove_tree, syncfs
from .index import ImageIndex, ImageRecord
from .limits import ImportLimits
from .locks import FileLock
from .paths import StorePaths
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable, Dict, List, Optional, Set, Tuple

MIN_ID_PREFIX = 4


TOUCH_INTERVAL = 60.0  # seconds: image gc's grace periods are hours or days


class ImportResult(Record):
    """The outcome of importing one archive."""

    FIELDS = ("record", "compression", "already_present", "warnings")

    def __init__(
        self, record: ImageRecord, compression: str, already_present: bool, warnings: Optional[List[str]] = None
    ) -> None:
        self.record = record
        self.compression = compression
        self.already_present = already_present
        self.warnings = [] if warnings is None else warnings


class WorkDir:
    """A private folder under cas/tmp, locked for as long as this process uses it."""

    def __init__(self, paths: StorePaths) -> None:
        while True:
            name = os.urandom(12).hex()  # os.urandom is what secrets uses, without its imports
            path = paths.tmp / name
            lock_path = paths.tmp_lock(path)
            try:
                os.close(os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                continue
            lock = FileLock(lock_path)
            lock.acquire()
            # A concurrent cleanup may have taken and deleted the lock file before we locked it.
            if _same_file(lock_path, lock):
                break
            lock.release()
        self.path = path
        self.lock = lock
        os.mkdir(path, 0o700)

    def discard(self) -> None:
        """Delete the folder (if still here) and its lock."""
        remove_tree(self.path)
        self.close()

    def close(self) -> None:
        """Give up the lock once the folder has been renamed away or deleted."""
        try:
            os.unlink(self.lock.path)
        except FileNotFoundError:
            pass
        self.lock.release()


def _same_file(path: Path, lock: FileLock) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(lock.fileno())
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


class Store:
    """The image store under one data directory; opening it repairs what crashes left behind."""

    def __init__(self, root: os.PathLike[str] | str, *, limits: Optional[ImportLimits] = None) -> None:
        self.paths = StorePaths(root)
        self.limits = limits or ImportLimits()
        for folder in (self.paths.root, self.paths.cas, self.paths.images, self.paths.rendered, self.paths.locks):
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.paths.tmp.mkdir(mode=0o700, exist_ok=True)
        self.index = ImageIndex(self.paths.index_db)
        self.recover()

    @classmethod
    def read_only(cls, root: os.PathLike[str] | str, *, limits: Optional[ImportLimits] = None) -> Optional[Store]:
        """The store seen without touching it (check mode), None if there is none yet: no folder is made, no
        crash leftover repaired, and the index is read in sqlite's immutable mode; only look-ups work."""
        paths = StorePaths(root)
        if not paths.index_db.is_file():
            return None
        store = cls.__new__(cls)
        store.paths = paths
        store.limits = limits or ImportLimits()
        store.index = ImageIndex.read_only(paths.index_db)
        return store

    def close(self) -> None:
        self.index.close()

    # -- crash recovery -------------------------------------------------------------------------

    def recover(self) -> None:
        """Remove work folders of dead processes and image folders that never got an index row."""
        for entry in os.scandir(self.paths.tmp):
            if entry.name.endswith(".lock"):
                self._reap_work(self.paths.tmp / entry.name[: -len(".lock")])
            elif entry.is_dir(follow_symlinks=False) and not os.path.exists(entry.path + ".lock"):
                self._reap_work(Path(entry.path))
        known = set(self.index.ids())
        for entry in os.scandir(self.paths.images):
            if entry.name not in known:
                with_lock = FileLock(self.paths.image_lock(entry.name))
                if not with_lock.acquire(blocking=False):
                    continue  # an import is renaming it into place right now
                try:
                    if self.index.get(entry.name) is None:
                        self._hide_and_delete(Path(entry.path))
                finally:
                    with_lock.release()

    def _reap_work(self, work: Path) -> None:
        lock_path = self.paths.tmp_lock(work)
        lock = FileLock(lock_path)
        if not lock.acquire(blocking=False):
            return  # its process is alive
        try:
            if os.path.exists(lock_path) and not _same_file(lock_path, lock):
                return
            remove_tree(work)
            try:
                os.unlink(lock_path)
            except FileNotFoundError:
                pass
        finally:
            lock.release()

    def _hide_and_delete(self, folder: Path) -> None:
        """Move a folder into a locked work folder (one atomic rename), then delete it at leisure."""
        work = WorkDir(self.paths)
        try:
            os.rename(folder, work.path / "trash")
        except FileNotFoundError:
            pass  # another command removed it first
        else:
            fsync_dir(folder.parent)
        work.discard()

    # -- import ---------------------------------------------------------------------------------

    def import_archive(
        self,
        source: os.PathLike[str] | str | BinaryIO,
        *,
        where: str = "",
        accept: Optional[Callable[[str, Dict[str, Any]], None]] = None,
        limits: Optional[ImportLimits] = None,
    ) -> ImportResult:
        """Hash, check and extract an archive in one pass, then make it visible; idempotent per image ID.

        `accept(image_id, manifest)` runs after extraction and before the image becomes visible: if it
        raises, the store is left exactly as it was (how fetch enforces names, labels and rollback).
        """
        from .compression import open_tar_stream
        from .extract import extract_archive
        from .manifest import image_labels, load_image_manifest

        if isinstance(source, (str, os.PathLike)):
            where = where or os.fspath(source)
            try:
                raw: BinaryIO = open(source, "rb", buffering=0)
            except OSError as exc:
                raise UsageError(f"cannot open image file {where}: {exc.strerror}", hint="check the path") from exc
            owned: Optional[BinaryIO] = raw
        else:
            raw, owned = source, None  # the caller's stream: the caller closes it
        work = WorkDir(self.paths)
        try:
            import contextlib  # only imports come here: contextlib stays off the pod-start path

            with owned or contextlib.nullcontext():
                stream, compression = open_tar_stream(raw)
                with open(work.path / "skeleton", "wb") as skeleton:
                    extraction = extract_archive(stream, str(work.path), skeleton, limits=limits or self.limits)
                    skeleton.flush()
            manifest = load_image_manifest(extraction.manifest, where=f"manifest of {where}")
            if accept is not None:
                accept(extraction.image_id, manifest)
            # One syncfs makes every extracted file durable before the rename publishes them.
            syncfs(work.path)
            record, already = self._publish(
                work, extraction.image_id, manifest["name"], image_labels(manifest), extraction.size
            )
        except ImageError as exc:
            if where and "source" not in exc.context:
                exc.context["source"] = where
                exc.message = f"{where}: {exc.message}"
            work.discard()
            raise
        except BaseException:
            work.discard()
            raise
        return ImportResult(
            record=record, compression=compression, already_present=already, warnings=extraction.warnings
        )

    def _publish(
        self, work: WorkDir, image_id: str, name: str, labels: Dict[str, str], size: int
    ) -> Tuple[ImageRecord, bool]:
        target = self.paths.image_dir(image_id)
        with FileLock(self.paths.image_lock(image_id)):
            existing = self.index.get(image_id)
            if existing is not None and target.is_dir():
                work.discard()
                return existing, True
            if existing is not None:
                self.index.remove(image_id)  # a row without its folder: repair, then import again
            if target.exists():
                self._hide_and_delete(target)
            os.rename(work.path, target)
            fsync_dir(self.paths.images)
            self.index.add(image_id=image_id, name=name, labels=labels, size=size)
            work.close()
        record = self.index.get(image_id)
        if record is None:
            raise AssertionError(f"bug: image {image_id} vanished right after import")
        return record, False

    # -- look-ups -------------------------------------------------------------------------------

    def images(self) -> List[ImageRecord]:
        """Every image, oldest import first."""
        return self.index.all()

    def resolve(self, reference: str) -> ImageRecord:
        """Find one image by ID (any unique prefix, with or without `sha512-`) or by name[:version][,label=v]."""
        from .names import parse_image_reference

        text = reference.strip()
        if text.startswith("sha512-") and len(text) < len("sha512-") + MIN_ID_PREFIX:
            raise UsageError(
                f"image ID prefix {text!r} is too short",
                hint=f"give at least {MIN_ID_PREFIX} hex digits after 'sha512-'",
            )
        if text.startswith("sha512-") or (
            len(text) >= MIN_ID_PREFIX * 2 and all(c in "0123456789abcdef" for c in text)
        ):
            prefix = text if text.startswith("sha512-") else "sha512-" + text
            matches = self.index.by_prefix(prefix)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                listed = ", ".join(m.id[:19] for m in matches[:5])
                raise StoreError(
                    f"image ID prefix {text!r} is ambiguous: it matches {len(matches)} images ({listed})",
                    hint="give more characters of the image ID",
                    reference=text,
                )
            if text.startswith("sha512-"):
                raise NotFoundError(
                    f"no image with ID {text!r} in the store",
                    hint="see 'rocket image list'",
                    reference=text,
                )
        name, labels = parse_image_reference(text)
        candidates = [r for r in self.index.by_name(name) if all(r.labels.get(k) == v for k, v in labels.items())]
        if not candidates:
            raise NotFoundError(
                f"no image named {text!r} in the store",
                hint="fetch it first, or see 'rocket image list'",
                reference=text,
            )
        return candidates[0]

    def matching(self, reference: str) -> List[ImageRecord]:
        """Every image a reference names: the one of an image ID (prefix), or each import of a name[:version]
        whose labels match, newest import first; [] if none (an ambiguous ID prefix is still a StoreError)."""
        from .names import parse_image_reference

        text = reference.strip()
        is_hex = len(text) >= MIN_ID_PREFIX * 2 and all(c in "0123456789abcdef" for c in text)
        if text.startswith("sha512-") or is_hex:
            if self.index.by_prefix(text if text.startswith("sha512-") else "sha512-" + text):
                return [self.resolve(text)]  # one, or StoreError naming the ambiguous prefix
            if not is_hex:
                return []
        name, labels = parse_image_reference(text)
        return [r for r in self.index.by_name(name) if all(r.labels.get(k) == v for k, v in labels.items())]

    def manifest_bytes(self, image_id: str) -> bytes:
        """The image manifest exactly as it was in the archive."""
        try:
            return self.paths.image_manifest(image_id).read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"image {image_id} has no manifest in the store", hint="remove and fetch it again"
            ) from None

    def manifest(self, image_id: str) -> Dict[str, object]:
        """The parsed image manifest, a fresh copy each time. The same bytes are validated once per
        handle: `rocket run` reads an image's manifest four times before its pod starts."""
        import json

        from .manifest import load_image_manifest

        data = self.manifest_bytes(image_id)
        validated: Dict[str, bytes] = self.__dict__.setdefault("_validated_manifests", {})
        if validated.get(image_id) == data:
            return json.loads(data)  # type: ignore[no-any-return]
        manifest = load_image_manifest(data, where=f"manifest of {image_id}")
        validated[image_id] = data
        return manifest

    def touch(self, image_id: str, *, unless_since: Optional[float] = None) -> None:
        """Mark an image as used now (image gc keeps what was used recently). With `unless_since`, the
        time the record last showed, a use within TOUCH_INTERVAL of it writes nothing: pod starts
        then cost no index write and no checkpoint with its fsyncs."""
        if unless_since is not None and time.time() - unless_since < TOUCH_INTERVAL:
            return
        self.index.touch(image_id)

    # -- removal --------------------------------------------------------------------------------

    def remove(self, image_id: str) -> None:
        """Delete an image and every rendered tree built from it; the row goes first, so it vanishes at once."""
        with FileLock(self.paths.image_lock(image_id)):
            if self.index.get(image_id) is None:
                raise NotFoundError(f"no image with ID {image_id!r} in the store", reference=image_id)
            self.index.remove(image_id)
            target = self.paths.image_dir(image_id)
            if target.exists():
                self._hide_and_delete(target)
        from .render import remove_renders_using

        remove_renders_using(self, {image_id})

    def unused_images(
        self, *, grace_seconds: float, in_use: Optional[Set[str]] = None, now: Optional[float] = None
    ) -> List[ImageRecord]:
        """The images gc would remove: not used for longer than the grace period and not in `in_use`."""
        cutoff = (time.time() if now is None else now) - grace_seconds
        return [r for r in self.index.all() if r.last_used < cutoff and r.id not in (in_use or set())]

    def gc(self, *, grace_seconds: float, in_use: Optional[Set[str]] = None) -> List[str]:
        """Remove images not used for longer than the grace period (never those in `in_use`, the images of
        pods that still exist) and renders left without images."""
        from .render import remove_renders_using

        removed = []
        for record in self.unused_images(grace_seconds=grace_seconds, in_use=in_use):
            try:
                self.remove(record.id)
            except NotFoundError:
                continue  # removed by a concurrent command
            removed.append(record.id)
        remove_renders_using(self, set())
        return removed

    # -- export and verification ----------------------------------------------------------------

    def export(self, image_id: str, out: Optional[BinaryIO]) -> str:
        """Write the image's archive, byte for byte as imported; fails if the stored tree changed."""
        from .skeleton import replay

        produced = replay(self.paths.image_dir(image_id), out)
        if produced != image_id:
            raise StoreError(
                f"image {image_id} was modified in the store: it now hashes to {produced}",
                hint=f"remove it with 'rocket image rm {image_id}' and fetch it again",
                image=image_id,
            )
        return produced

    def verify(self, image_id: str) -> None:
        """Re-hash the stored image; raises StoreError if any byte differs from what was imported."""
        self.export(image_id, None)
