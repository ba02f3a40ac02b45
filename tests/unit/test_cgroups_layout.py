"""cgroup layout detection from mountinfo texts, and the files a pod's cgroups get written, against a fake
cgroup tree of plain files in a temporary folder (the kernel's side is played by `fake_cgroup`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import pytest

from rocket import cgroups
from rocket.cgroups import CgroupLayout, CgroupStats, PodCgroup, delegated_parent, parse_layout
from rocket.errors import RocketError
from rocket.isolators import CPU_SHARES, RESOURCE_CPU, RESOURCE_MEMORY

POD = "1c7a9e5e-4b2d-4f7e-9a0b-5d6c7e8f9a0b"
FILESYSTEMS = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tcgroup\nnodev\tcgroup2\n\text4\n"
FILESYSTEMS_V1_ONLY = "nodev\tsysfs\nnodev\tcgroup\n\text4\n"

_OPTS = "rw,nosuid,nodev,noexec,relatime"
V1_CONTROLLER_LINES = f"""\
24 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
25 24 0:22 / /sys/fs/cgroup/systemd {_OPTS} shared:9 - cgroup cgroup rw,xattr,name=systemd
28 24 0:25 / /sys/fs/cgroup/cpu,cpuacct {_OPTS} shared:10 - cgroup cgroup rw,cpu,cpuacct
29 24 0:26 / /sys/fs/cgroup/memory {_OPTS} shared:11 - cgroup cgroup rw,memory
30 24 0:27 / /sys/fs/cgroup/net_cls,net_prio {_OPTS} shared:12 - cgroup cgroup rw,net_cls,net_prio
31 24 0:28 / /sys/fs/cgroup/pids {_OPTS} shared:13 - cgroup cgroup rw,pids
32 24 0:29 / /sys/fs/cgroup/devices {_OPTS} shared:14 - cgroup cgroup rw,devices
33 24 0:30 / /sys/fs/cgroup/freezer {_OPTS} shared:15 - cgroup cgroup rw,freezer
34 24 0:31 / /sys/fs/cgroup/cpuset {_OPTS} shared:16 - cgroup cgroup rw,cpuset
35 24 0:32 / /sys/fs/cgroup/blkio {_OPTS} shared:17 - cgroup cgroup rw,blkio
"""
COMMON = f"""\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
18 22 0:17 / /sys {_OPTS} shared:6 - sysfs sysfs rw
19 22 0:18 / /proc {_OPTS} shared:7 - proc proc rw
"""
LEGACY = COMMON + V1_CONTROLLER_LINES
HYBRID = LEGACY + f"26 24 0:23 / /sys/fs/cgroup/unified {_OPTS} shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
_V2_OPTS = "rw,nsdelegate,memory_recursiveprot"
UNIFIED = COMMON + f"30 18 0:26 / /sys/fs/cgroup {_OPTS} shared:4 - cgroup2 cgroup2 {_V2_OPTS}\n"
# A container that sees its own subtree bind-mounted, read-only, with a path that needs escaping.
CONTAINER = COMMON + "40 18 0:26 /docker/abc /sys/fs/cgroup\\040x ro,relatime master:4 - cgroup2 cgroup2 rw\n"


@pytest.mark.parametrize(
    ("text", "mode", "unified", "memory_at"),
    [
        (LEGACY, "v1", None, "/sys/fs/cgroup/memory"),
        (HYBRID, "hybrid", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory"),
        (UNIFIED, "v2", "/sys/fs/cgroup", None),
        (CONTAINER, "v2", "/sys/fs/cgroup x", None),
        (COMMON, "none", None, None),
    ],
)
def test_modes(text: str, mode: str, unified: str | None, memory_at: str | None) -> None:
    layout = parse_layout(text, FILESYSTEMS)
    assert layout.mode == mode
    assert (str(layout.unified.mount_point) if layout.unified else None) == unified
    memory = layout.v1_hierarchy("memory")
    assert (str(memory.mount_point) if memory else None) == memory_at
    assert layout.kernel_v1 and layout.kernel_v2


def test_v1_hierarchies_with_several_controllers_and_no_named_ones() -> None:
    layout = parse_layout(HYBRID, FILESYSTEMS)
    cpu, cpuacct = layout.v1_hierarchy("cpu"), layout.v1_hierarchy("cpuacct")
    assert cpu is cpuacct and cpu is not None
    assert str(cpu.mount_point) == "/sys/fs/cgroup/cpu,cpuacct" and cpu.controllers == {"cpu", "cpuacct"}
    assert all("name=systemd" not in h.controllers for h in layout.v1)  # systemd's own tree is left alone
    pod = PodCgroup(layout, POD)
    assert {str(h.mount_point) for h in pod.hierarchies} == {
        "/sys/fs/cgroup/cpu,cpuacct",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/devices",
        "/sys/fs/cgroup/freezer",
        "/sys/fs/cgroup/cpuset",
        "/sys/fs/cgroup/blkio",
        "/sys/fs/cgroup/unified",
    }
    assert str(pod.path(layout.v1_hierarchy("memory"), "web")) == f"/sys/fs/cgroup/memory/rocket/{POD}/web"


def test_this_machines_kind_of_mountinfo_and_a_kernel_without_cgroup2() -> None:
    text = HYBRID.replace("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu").replace("rw,cpu,cpuacct", "rw,cpu")
    text += f"36 24 0:33 / /sys/fs/cgroup/cpuacct {_OPTS} - cgroup cgroup rw,cpuacct\n"
    layout = parse_layout(text, FILESYSTEMS_V1_ONLY)
    assert layout.v1_hierarchy("cpu") != layout.v1_hierarchy("cpuacct")
    assert layout.kernel_v1 and not layout.kernel_v2


def test_a_hierarchy_mounted_twice_is_used_through_its_whole_tree() -> None:
    text = COMMON + (
        f"50 18 0:26 /sub /mnt/sub {_OPTS} - cgroup cgroup rw,memory\n"
        f"51 18 0:26 / /sys/fs/cgroup/memory {_OPTS} - cgroup cgroup rw,memory\n"
    )
    memory = parse_layout(text, FILESYSTEMS).v1_hierarchy("memory")
    assert memory is not None and str(memory.mount_point) == "/sys/fs/cgroup/memory" and memory.root == "/"


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (512, 50), (1024, 100), (10240, 1000), (262144, 10000)])
def test_cpu_weight_as_systemd_converts(shares: int, weight: int) -> None:
    assert cgroups.cpu_weight(shares) == weight


@pytest.mark.parametrize(("millicores", "quota"), [(1, 1000), (10, 1000), (250, 25000), (1000, 100000), (2500, 250000)])
def test_cpu_quota(millicores: int, quota: int) -> None:
    assert cgroups.cpu_quota_us(millicores) == quota


# --- The v2 path against a fake tree -----------------------------------------------------------------


def fake_cgroup(folder: Path, offered: Iterable[str]) -> Path:
    """Make the files the kernel shows in a v2 cgroup whose parent enables `offered`."""
    offered = list(offered)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"cgroup.controllers": " ".join(offered), "cgroup.subtree_control": "", "cgroup.procs": ""}
    files.update({"cgroup.kill": "", "cgroup.freeze": "0", "cpu.stat": "usage_usec 0\nuser_usec 0\n"})
    if "memory" in offered:
        files.update({"memory.max": "max", "memory.swap.max": "max", "memory.current": "0", "memory.peak": "0"})
    if "cpu" in offered:
        files.update({"cpu.max": "max 100000", "cpu.weight": "100"})
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def v2_layout(root: Path) -> CgroupLayout:
    return parse_layout(COMMON + f"30 18 0:26 / {root} {_OPTS} - cgroup2 cgroup2 rw,nsdelegate\n", FILESYSTEMS)


@pytest.fixture
def v2_pod(tmp_path: Path) -> PodCgroup:
    root = fake_cgroup(tmp_path / "cg", ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"])
    for folder in ("rocket", f"rocket/{POD}", f"rocket/{POD}/web"):
        fake_cgroup(root / folder, ["cpu", "memory", "pids"])
    pod = PodCgroup(v2_layout(root), POD)
    pod.create()
    return pod


def test_v2_create_enables_the_controllers_down_to_the_pod(v2_pod: PodCgroup, tmp_path: Path) -> None:
    root = tmp_path / "cg"
    for folder in (root, root / "rocket", root / "rocket" / POD):
        assert (folder / "cgroup.subtree_control").read_text() == "+cpu +memory +pids", folder
    assert (root / "rocket" / POD / "web" / "cgroup.subtree_control").read_text() == ""  # a leaf keeps processes
    assert v2_pod.exists()


def test_v2_limits(v2_pod: PodCgroup, tmp_path: Path) -> None:
    web, pod = tmp_path / "cg" / "rocket" / POD / "web", tmp_path / "cg" / "rocket" / POD
    v2_pod.set_memory_limit("web", 32 << 20)
    assert (web / "memory.max").read_text() == "33554432"
    assert (web / "memory.swap.max").read_text() == "0"
    v2_pod.set_memory_limit(None, 1 << 30)
    assert (pod / "memory.max").read_text() == str(1 << 30)
    v2_pod.set_cpu_limit("web", 500)
    assert (web / "cpu.max").read_text() == "50000 100000"
    v2_pod.set_cpu_shares("web", 512)
    assert (web / "cpu.weight").read_text() == "50"
    assert v2_pod.controller_path("memory", "web") == web


def test_v2_attach_pids_and_stats(v2_pod: PodCgroup, tmp_path: Path) -> None:
    web = tmp_path / "cg" / "rocket" / POD / "web"
    assert v2_pod.procs_files("web") == [str(web / "cgroup.procs")]
    v2_pod.attach("web", 4242)
    assert (web / "cgroup.procs").read_text() == "4242"
    assert v2_pod.pids() == [4242]
    (web / "memory.current").write_text("1000\n")
    (web / "memory.peak").write_text("2000\n")
    (web / "cpu.stat").write_text("usage_usec 42\nuser_usec 40\nsystem_usec 2\n")
    assert v2_pod.stats("web") == CgroupStats(memory_current=1000, memory_peak=2000, cpu_usage_usec=42)


def test_v2_missing_controller_names_the_isolator(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path / "cg", ["pids"])
    for folder in ("rocket", f"rocket/{POD}", f"rocket/{POD}/web"):
        fake_cgroup(root / folder, ["pids"])
    pod = PodCgroup(v2_layout(root), POD)
    pod.create()
    assert (root / "cgroup.subtree_control").read_text() == "+pids"
    for call, isolator in (
        (lambda: pod.set_memory_limit("web", 1 << 20), RESOURCE_MEMORY),
        (lambda: pod.set_cpu_limit("web", 100), RESOURCE_CPU),
        (lambda: pod.set_cpu_shares("web", 100), CPU_SHARES),
    ):
        with pytest.raises(RocketError) as caught:
            call()
        assert caught.value.context["isolator"] == isolator
        assert caught.value.context["mode"] == "v2" and caught.value.hint
    assert pod.stats("web").memory_current is None


def test_v2_delegated_parent(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path / "cg", ["cpu", "memory", "pids"])
    unit = fake_cgroup(root / "system.slice" / "rocket-pod.service", ["cpu", "memory", "pids"])
    for folder in (unit / POD, unit / POD / "web"):
        fake_cgroup(folder, ["cpu", "memory", "pids"])
    pod = PodCgroup(v2_layout(root), POD, parent="/system.slice/rocket-pod.service")
    pod.create()
    assert (root / "cgroup.subtree_control").read_text() == ""  # above the delegation: not ours to touch
    assert (unit / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    pod.set_memory_limit("web", 64 << 20)
    assert (unit / POD / "web" / "memory.max").read_text() == str(64 << 20)
    with pytest.raises(RocketError):
        PodCgroup(v2_layout(root), POD, parent="system.slice/missing.service").create()


def test_a_supervisor_under_systemd_moves_into_a_leaf_of_its_unit(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path / "cg", ["cpu", "memory", "pids"])
    unit = fake_cgroup(root / "system.slice" / "rocket-pod.service", ["cpu", "memory", "pids"])
    fake_cgroup(unit / "supervisor", [])  # the kernel makes cgroup.procs in a new folder; a plain one has none
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/system.slice/rocket-pod.service\n")
    layout = v2_layout(root)
    assert delegated_parent(layout, under_systemd=False, proc=proc) is None
    assert delegated_parent(layout, under_systemd=True, proc=proc) == "/system.slice/rocket-pod.service"
    assert (unit / "supervisor" / "cgroup.procs").read_text() == str(os.getpid())
    (proc / "self" / "cgroup").write_text("0::/system.slice/rocket-pod.service/supervisor\n")
    assert delegated_parent(layout, under_systemd=True, proc=proc) == "/system.slice/rocket-pod.service"
    memory = tmp_path / "memory"
    lines = (
        f"26 24 0:23 / {root} {_OPTS} - cgroup2 cgroup2 rw\n29 24 0:26 / {memory} {_OPTS} - cgroup cgroup rw,memory\n"
    )
    hybrid = parse_layout(COMMON + lines, FILESYSTEMS)
    assert delegated_parent(hybrid, under_systemd=True, proc=proc) is None  # v1 controllers: the old layout


def test_hybrid_falls_back_to_v1_where_v2_lacks_the_controller(tmp_path: Path) -> None:
    unified, memory = fake_cgroup(tmp_path / "unified", []), tmp_path / "memory"
    app = memory / "rocket" / POD / "web"
    app.mkdir(parents=True)
    unlimited = "9223372036854771712"
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        (app / name).write_text(unlimited)
    text = COMMON + (
        f"29 24 0:26 / {memory} {_OPTS} - cgroup cgroup rw,memory\n"
        f"26 24 0:23 / {unified} {_OPTS} - cgroup2 cgroup2 rw,nsdelegate\n"
    )
    layout = parse_layout(text, FILESYSTEMS)
    assert layout.mode == "hybrid"
    pod = PodCgroup(layout, POD)
    pod.create()
    pod.set_memory_limit("web", 32 << 20)
    assert (app / "memory.limit_in_bytes").read_text() == str(32 << 20)
    assert (app / "memory.memsw.limit_in_bytes").read_text() == str(32 << 20)
    assert (unified / "rocket" / POD / "web").is_dir()  # the unified tree still tracks the processes
    with pytest.raises(RocketError) as caught:
        pod.set_cpu_limit("web", 100)
    assert caught.value.context["isolator"] == RESOURCE_CPU and caught.value.context["mode"] == "hybrid"


def test_unified_cgroup_and_oom_score_adj(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "cgroup").write_text("1:name=systemd:/user.slice\n0::/system.slice/rocket.service\n")
    assert cgroups.unified_cgroup(proc=tmp_path) == "/system.slice/rocket.service"
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "oom_score_adj").write_text("0")
    cgroups.set_oom_score_adj(77, -500, proc=tmp_path)
    assert (tmp_path / "77" / "oom_score_adj").read_text() == "-500"
    with pytest.raises(RocketError):
        cgroups.set_oom_score_adj(77, 1001, proc=tmp_path)
    with pytest.raises(RocketError):
        cgroups.set_oom_score_adj(78, 0, proc=tmp_path)


@pytest.mark.parametrize("parent", ["", "/", "a/../b", "a//b", "./a"])
def test_parent_must_be_a_plain_relative_path(parent: str, tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        PodCgroup(v2_layout(tmp_path), POD, parent=parent)
