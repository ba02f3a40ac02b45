"""The audit log: every trust decision (and, later, every pod start and exit), one JSON object a line.

The log is append-only: records are added with one O_APPEND write each and never rewritten, so an
operator can ship it elsewhere or compare it with what ran. Reading skips a torn last line, which is
all a crash can leave.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .fileio import append_record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

# What a record's "event" may be; each has its own required fields, checked when written.
EVENT_FIELDS = {
    "verified": ("image", "name", "fingerprint", "scope"),
    "rejected": ("name", "reason"),
    "accepted-insecure": ("image", "name", "flag"),
    "pod-start": ("pod", "images"),
    "pod-stop": ("pod",),
    "pod-exit": ("pod", "status"),
}


class AuditLog:
    """Appends and reads the audit log of one data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event: str, **fields: Any) -> Dict[str, Any]:
        """Append one event; the fields this kind of event needs must be given."""
        required = EVENT_FIELDS.get(event)
        if required is None:
            raise AssertionError(f"bug: unknown audit event {event!r}")
        missing = [name for name in required if fields.get(name) in (None, "")]
        if missing:
            raise AssertionError(f"bug: audit event {event!r} lacks {', '.join(missing)}")
        entry: Dict[str, Any] = {"time": time.time(), "event": event, "uid": os.getuid(), "pid": os.getpid()}
        entry.update({key: value for key, value in fields.items() if value is not None})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_record(self.path, json.dumps(entry, sort_keys=True).encode())
        return entry

    def entries(self, *, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """The records, oldest first (the last `limit` if given)."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue  # a torn line from a crash mid-write
        return found[-limit:] if limit else found
