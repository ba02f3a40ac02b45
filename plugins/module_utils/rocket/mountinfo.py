"""The lines of /proc/self/mountinfo (proc(5)), read into mounts.

Each line is `ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL-FIELDS...] - FSTYPE SOURCE
SUPER-OPTIONS`; spaces, tabs, newlines and backslashes inside paths are octal escapes (`\\040`).
Only builtins are used: cgroup_warmup.py reads mounts before the engine's imports.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before the engine's imports
if TYPE_CHECKING:
    from typing import List

_OCTAL = frozenset("01234567")


class Mount:
    """One mount: the subtree of its file system it shows (`root`), where, its type and super options."""

    __slots__ = ("fstype", "mount_point", "root", "super_options")

    def __init__(self, root: str, mount_point: str, fstype: str, super_options: List[str]) -> None:
        self.root = root
        self.mount_point = mount_point
        self.fstype = fstype
        self.super_options = super_options


def unescape(field: str) -> str:
    r"""A path field with its octal escapes (`\040` for a space) decoded; anything else kept as it is."""
    if "\\" not in field:
        return field
    parts = field.split("\\")
    decoded = [parts[0]]
    for part in parts[1:]:
        if len(part) >= 3 and _OCTAL.issuperset(part[:3]):
            decoded.append(chr(int(part[:3], 8)) + part[3:])
        else:
            decoded.append("\\" + part)
    return "".join(decoded)


def parse_mountinfo(text: str) -> List[Mount]:
    """The mounts of a mountinfo text, in its order; lines without the ` - ` separator are skipped."""
    mounts: List[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3:
            continue
        options = fields[separator + 3].split(",") if len(fields) > separator + 3 else []
        mounts.append(Mount(unescape(fields[3]), unescape(fields[4]), fields[separator + 1], options))
    return mounts
