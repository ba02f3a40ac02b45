"""User and group resolution inside an image's root, as the appc specification says.

`user` and `group` are a name from the image's /etc/passwd or /etc/group, else digits (a numeric ID),
else an absolute path inside the image whose owner (or group) is used. Files are read relative to the
app's root and never through a symlink that leaves it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PodStateError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

MAX_DB_SIZE = 4 << 20


def _read_db(rootfs: Path, relative: str) -> List[List[str]]:
    """The colon-separated records of /etc/passwd or /etc/group of an image (empty if absent)."""
    path = safe_join(rootfs, relative)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_DB_SIZE)
    except OSError:
        return []
    return [
        line.split(":") for line in data.decode("utf-8", "replace").splitlines() if line and not line.startswith("#")
    ]


def safe_join(rootfs: Path, path: str) -> Path:
    """`path` inside `rootfs`, resolving symlinks as if `rootfs` were `/` (never escaping it)."""
    return Path(join_resolved(os.path.realpath(rootfs), path))


def join_resolved(root: str, path: str) -> str:
    """safe_join for a `root` resolved already (os.path.realpath): a pod start builds each app's root
    with a handful of these, and resolving the root's own ~10 components each time showed."""
    current = root
    parts = [p for p in path.split("/") if p and p != "."]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise PodStateError(f"too many symlinks resolving {path} in the image", path=path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        current = candidate
    return current


def resolve_user(rootfs: Path, user: str) -> Tuple[int, int, str]:
    """(uid, primary gid, home) for the manifest's `user`."""
    for record in _read_db(rootfs, "etc/passwd"):
        if len(record) >= 4 and record[0] == user:
            return int(record[2]), int(record[3]), record[5] if len(record) > 5 else "/"
    if user.isdigit():
        uid = int(user)
        for record in _read_db(rootfs, "etc/passwd"):
            if len(record) >= 4 and record[2] == user:
                return uid, int(record[3]), record[5] if len(record) > 5 else "/"
        return uid, 0, "/"
    if user.startswith("/"):
        info = _stat_in(rootfs, user, what="user")
        return info.st_uid, info.st_gid, "/"
    raise PodStateError(
        f"user {user!r} is not in the image's /etc/passwd, not a number and not a path",
        hint="use a numeric ID or add the user to the image",
        user=user,
    )


def resolve_group(rootfs: Path, group: str) -> int:
    """The gid for the manifest's `group`."""
    for record in _read_db(rootfs, "etc/group"):
        if len(record) >= 3 and record[0] == group:
            return int(record[2])
    if group.isdigit():
        return int(group)
    if group.startswith("/"):
        return _stat_in(rootfs, group, what="group").st_gid
    raise PodStateError(
        f"group {group!r} is not in the image's /etc/group, not a number and not a path",
        hint="use a numeric ID or add the group to the image",
        group=group,
    )


def supplementary_groups(rootfs: Path, user_name: str, extra: Optional[List[int]] = None) -> List[int]:
    """The groups listing `user_name` as a member in the image's /etc/group, plus `extra`."""
    groups = [int(r[2]) for r in _read_db(rootfs, "etc/group") if len(r) >= 4 and user_name in r[3].split(",")]
    return sorted(set(groups + list(extra or [])))


def _stat_in(rootfs: Path, path: str, *, what: str) -> os.stat_result:
    try:
        return os.stat(safe_join(rootfs, path))
    except OSError as exc:
        raise PodStateError(f"{what} path {path!r} does not exist in the image", hint="fix the manifest") from exc
