"""What garbage collection would remove, decided without removing, moving or locking anything.

The `appc.rocket.gc` module's check mode reports this; the real run is lifecycle.gc and Store.gc. The
pod rules here mirror lifecycle.gc: an exited pod (in run/ with its lock free) is kept `grace_seconds`
after gc first sees it exited, an exited-garbage pod `grace_seconds` after its recorded exit, a prepared
pod PREPARED_EXPIRY after it was made, and a garbage pod is always removed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional, Set

from .lifecycle import PREPARED_EXPIRY
from .pod import EXITED_GARBAGE, GARBAGE, PREPARED, RUN, Pod
from .store import Store


def pods_to_collect(data_dir: Path, *, grace_seconds: float, now: Optional[float] = None) -> List[str]:
    """UUIDs of the pods that lifecycle.gc would remove now (reads pod folders only)."""
    moment = time.time() if now is None else now
    chosen: List[str] = []
    for pod in Pod.all(data_dir):
        if pod.state == RUN:
            # gc would move it to exited-garbage with "exited-at" = now, so only a zero grace removes it.
            if not pod.is_locked_by_other() and not pod.is_starting() and grace_seconds <= 0:
                chosen.append(pod.uuid)
        elif pod.state == EXITED_GARBAGE:
            try:
                exited = float((pod.path / "exited-at").read_text())
            except (OSError, ValueError):
                exited = 0.0
            if moment - exited >= grace_seconds and not pod.is_locked_by_other():
                chosen.append(pod.uuid)
        elif pod.state == PREPARED:
            if moment - pod.created() > PREPARED_EXPIRY and not pod.is_locked_by_other():
                chosen.append(pod.uuid)
        elif pod.state == GARBAGE:
            chosen.append(pod.uuid)
    return chosen


def images_to_collect(
    store: Store, *, grace_seconds: float, in_use: Set[str], now: Optional[float] = None
) -> List[str]:
    """IDs of the images Store.gc would remove now: unused for `grace_seconds` and in no pod's `in_use` set."""
    return [record.id for record in store.unused_images(grace_seconds=grace_seconds, in_use=in_use, now=now)]


def images_used_by(data_dir: Path, *, excluding: Set[str]) -> Set[str]:
    """Image IDs of every pod that is not garbage and not in `excluding` (pods gc would remove first)."""
    used: Set[str] = set()
    for pod in Pod.all(data_dir):
        if pod.state != GARBAGE and pod.uuid not in excluding:
            used.update(app.get("image_id", "") for app in (pod.runtime().get("apps") or {}).values())
    used.discard("")
    return used
