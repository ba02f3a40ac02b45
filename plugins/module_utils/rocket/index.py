"""The sqlite index of the image store: which images exist, their names, labels, sizes and times.

The index is the store's visible truth: an image folder that has no row is a leftover of a crash and
is removed by the next command. sqlite runs in WAL mode with a busy timeout, so many rocket processes
can read and write it at once; every write is one short transaction.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import StoreError
from .locks import FileLock
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    import sqlite3
    from typing import Dict, List, Optional
else:
    try:
        # sqlite3's C module: the same connect, Row and errors, without sqlite3.dbapi2's adapters for
        # datetime, whose import costs ~2 ms of every pod start. The index stores no dates.
        import _sqlite3 as sqlite3
    except ImportError:  # a Python whose sqlite3 is laid out otherwise
        import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    import_time REAL NOT NULL,
    last_used   REAL NOT NULL,
    size        INTEGER NOT NULL,
    trust       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS images_by_name ON images (name);
"""


class ImageRecord(Record):
    """One row of the index."""

    FIELDS = ("id", "name", "labels", "import_time", "last_used", "size", "trust")
    HASHABLE = True

    def __init__(
        self,
        id: str,
        name: str,
        labels: Dict[str, str],
        import_time: float,
        last_used: float,
        size: int,
        trust: str = "",
    ) -> None:
        self.id = id
        self.name = name
        self.labels = labels
        self.import_time = import_time
        self.last_used = last_used
        self.size = size
        self.trust = trust  # how the image was accepted: "signature:<fingerprint>", "policy:<scope>" or "insecure"

    @property
    def version(self) -> str:
        return self.labels.get("version", "")

    def as_json(self) -> Dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "labels": self.labels,
            "import_time": self.import_time,
            "last_used": self.last_used,
            "size": self.size,
            "trust": self.trust,
        }


def _record(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(
        id=row["id"],
        name=row["name"],
        labels=json.loads(row["labels"]),
        import_time=row["import_time"],
        last_used=row["last_used"],
        size=row["size"],
        trust=row["trust"],
    )


class ImageIndex:
    """Reads and writes the images table; each method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            # Switching to WAL and creating the schema take locks that sqlite's busy timeout does not
            # wait for when several processes open a new store at once; an flock serialises them.
            with FileLock(path.with_name(path.name + ".init.lock")):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(images)")}
                if "trust" not in columns:  # an index made before trust was recorded
                    self._db.execute("ALTER TABLE images ADD COLUMN trust TEXT NOT NULL DEFAULT ''")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open the image index {path}: {exc}",
                hint="check the permissions of --dir; if the file is damaged, move it away and re-fetch images",
            ) from exc

    @classmethod
    def read_only(cls, path: Path) -> ImageIndex:
        """The index opened for reading, writing nothing at all, not even sqlite's -shm (check mode):
        sqlite's immutable mode, which also takes no locks, so a read may race a concurrent import."""
        from urllib.parse import quote

        index = cls.__new__(cls)
        index.path = path
        try:
            index._db = sqlite3.connect(f"file:{quote(str(path))}?immutable=1", uri=True, isolation_level=None)
            index._db.row_factory = sqlite3.Row
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read the image index {path}: {exc}") from exc
        return index

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, params: tuple = ()) -> List[sqlite3.Row]:  # type: ignore[type-arg]
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"image index {self.path} failed: {exc}", hint="try again") from exc

    def add(self, *, image_id: str, name: str, labels: Dict[str, str], size: int) -> bool:
        """Insert an image; False if it was there already (a concurrent import of the same image)."""
        now = time.time()
        before = self._db.total_changes
        self._query(
            "INSERT OR IGNORE INTO images (id, name, labels, import_time, last_used, size) VALUES (?, ?, ?, ?, ?, ?)",
            (image_id, name, json.dumps(labels, sort_keys=True), now, now, size),
        )
        return self._db.total_changes > before

    def set_trust(self, image_id: str, trust: str) -> None:
        """Record how an image was accepted (checked again before it runs)."""
        self._query("UPDATE images SET trust = ? WHERE id = ?", (trust, image_id))

    def remove(self, image_id: str) -> None:
        self._query("DELETE FROM images WHERE id = ?", (image_id,))

    def get(self, image_id: str) -> Optional[ImageRecord]:
        rows = self._query("SELECT * FROM images WHERE id = ?", (image_id,))
        return _record(rows[0]) if rows else None

    def touch(self, image_id: str) -> None:
        """Record that an image was used now (gc's grace period counts from here)."""
        self._query("UPDATE images SET last_used = ? WHERE id = ?", (time.time(), image_id))

    def by_prefix(self, prefix: str) -> List[ImageRecord]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query("SELECT * FROM images WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))
        return [_record(row) for row in rows]

    def by_name(self, name: str) -> List[ImageRecord]:
        rows = self._query("SELECT * FROM images WHERE name = ? ORDER BY import_time DESC", (name,))
        return [_record(row) for row in rows]

    def all(self) -> List[ImageRecord]:
        return [_record(row) for row in self._query("SELECT * FROM images ORDER BY import_time")]

    def ids(self) -> List[str]:
        return [row["id"] for row in self._query("SELECT id FROM images")]
