"""Every on-disk path of the store, from one small named function each.

Layout under `--dir` (default /var/lib/rocket):

    cas/index.db                 sqlite index of images (name, labels, times, size)
    cas/images/<image-id>/       one imported image: `manifest`, `rootfs/`, `skeleton`
    cas/rendered/<key>/          an image rendered with its dependencies: `rootfs/`, `layers.json`
    cas/tmp/<random>/            work in progress; removed by the next command once its lock is free
    cas/downloads/               resumable downloads and, per URL, what it gave last (ETag, max-age, image ID)
    locks/                       flock files (the kernel drops them when their process dies)
    audit.jsonl                  append-only log of trust decisions and pod events (one JSON object a line)
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/rocket")
DEFAULT_LOCAL_CONFIG = Path("/etc/rocket")
DEFAULT_SYSTEM_CONFIG = Path("/usr/lib/rocket")
DEFAULT_RUN_DIR = Path("/run/rocket")


class StorePaths:
    """Named paths under one data directory; creating them is the store's job, not this class's."""

    def __init__(self, root: os.PathLike[str] | str) -> None:
        self.root = Path(root)

    @property
    def cas(self) -> Path:
        return self.root / "cas"

    @property
    def index_db(self) -> Path:
        return self.cas / "index.db"

    @property
    def images(self) -> Path:
        return self.cas / "images"

    @property
    def rendered(self) -> Path:
        return self.cas / "rendered"

    @property
    def tmp(self) -> Path:
        return self.cas / "tmp"

    @property
    def downloads(self) -> Path:
        return self.cas / "downloads"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.jsonl"

    def image_dir(self, image_id: str) -> Path:
        return self.images / image_id

    def image_manifest(self, image_id: str) -> Path:
        return self.image_dir(image_id) / "manifest"

    def image_rootfs(self, image_id: str) -> Path:
        return self.image_dir(image_id) / "rootfs"

    def image_skeleton(self, image_id: str) -> Path:
        return self.image_dir(image_id) / "skeleton"

    def rendered_dir(self, key: str) -> Path:
        return self.rendered / key

    def image_lock(self, image_id: str) -> Path:
        return self.locks / f"image-{image_id}.lock"

    def store_lock(self) -> Path:
        """Held shared by every command that uses images, exclusively by gc and rm."""
        return self.locks / "store.lock"

    def tmp_lock(self, work_dir: Path) -> Path:
        return work_dir.with_name(work_dir.name + ".lock")
