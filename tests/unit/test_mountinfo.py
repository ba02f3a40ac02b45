"""mountinfo: the lines of /proc/self/mountinfo read into mounts (shared by cgroups.py and cgroup_warmup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rocket.mountinfo import parse_mountinfo, unescape


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("/sys/fs/cgroup", "/sys/fs/cgroup"),
        ("/mnt/a\\040b", "/mnt/a b"),
        ("/mnt/tab\\011here\\012", "/mnt/tab\there\n"),
        ("/mnt/back\\134slash", "/mnt/back\\slash"),
        ("/mnt/not\\8escaped", "/mnt/not\\8escaped"),  # not three octal digits: kept as it is
        ("/mnt/short\\04", "/mnt/short\\04"),
        ("\\040lead", " lead"),
    ],
)
def test_unescape(field: str, expected: str) -> None:
    assert unescape(field) == expected


def test_parse_mountinfo_reads_fields_around_the_optional_ones() -> None:
    text = (
        "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n"
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2\n"  # no super options
        "garbage line\n"
        "42 31 0:39 / /x rw - short\n"  # no source: skipped
    )
    mounts = parse_mountinfo(text)
    assert [(m.root, m.mount_point, m.fstype, m.super_options) for m in mounts] == [
        ("/mnt1", "/mnt 2", "ext3", ["rw", "errors=continue"]),
        ("/", "/sys/fs/cgroup", "tmpfs", ["rw", "mode=755"]),
        ("/", "/sys/fs/cgroup/unified", "cgroup2", []),
    ]


def test_this_process_mounts_include_proc() -> None:
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    assert any(m.fstype == "proc" and m.mount_point == "/proc" for m in mounts)
