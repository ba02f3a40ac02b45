"""The store seen without touching it: image lookups for check mode, which must write nothing at all.

Opening a `Store` creates its folders, repairs crash leftovers and opens sqlite in WAL mode (which makes
`-shm` and `-wal` files); a `StoreView` only reads the index in sqlite's immutable mode, and a data
directory that does not exist yet simply holds no images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import NotFoundError
from .index import ImageIndex, ImageRecord
from .paths import StorePaths
from .store import Store


class StoreView:
    """Read-only lookups of images by ID prefix or name[:version][,label=value]."""

    def __init__(self, data_dir: Path) -> None:
        path = StorePaths(data_dir).index_db
        self.index: Optional[ImageIndex] = ImageIndex.read_only(path) if path.exists() else None

    def find(self, reference: str) -> Optional[ImageRecord]:
        """The image the store would resolve `reference` to, or None."""
        if self.index is None:
            return None
        try:
            return Store.resolve(self, reference)  # type: ignore[arg-type]  # it reads only .index
        except NotFoundError:
            return None

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
