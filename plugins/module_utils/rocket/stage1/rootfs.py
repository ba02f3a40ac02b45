"""Each app's root filesystem, built inside the pod's mount namespace by the pod's init (PID 1).

The root is an overlay: the rendered image (read-only, shared) below, the app's own `upper` folder on
top, so the image in the store is never written. Where overlayfs is missing the rendered tree is copied.
Then, inside the root: `/proc` (with rkt's masked and read-only paths), `/sys` read-only, `/dev` with
exactly the nodes the specification lists, the volumes, and finally a read-only remount when the pod
manifest asks for `readOnlyRootFS`. Every mount target is resolved inside the root, so a symlink in the
image cannot point a mount at the host.
"""

from __future__ import annotations

import errno
import os
import stat

from ..record import Record
from ..users import join_resolved
from . import linux

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import List, Optional

# rkt's and runc's lists: files hidden behind /dev/null, folders behind an empty read-only tmpfs,
# and paths made read-only.
MASKED_FILES = (
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/sysrq-trigger",
)
MASKED_DIRS = ("proc/acpi", "proc/scsi", "sys/firmware")
READ_ONLY = ("proc/sys", "proc/irq", "proc/bus", "proc/fs", "proc/asound")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
NOSUID_NODEV_NOEXEC = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC


class VolumeMount(Record):
    """A volume bound into one app: host path (or the pod's empty-volume folder) onto a path in the root."""

    FIELDS = ("source", "target", "read_only", "recursive")

    def __init__(self, source: str, target: str, read_only: bool = False, recursive: bool = True) -> None:
        self.source = source
        self.target = target
        self.read_only = read_only
        self.recursive = recursive


class RootPlan(Record):
    """What one app's root is made of."""

    FIELDS = ("app", "lower", "upper", "work", "root", "read_only", "volumes", "console", "host_view")

    def __init__(
        self,
        app: str,
        lower: str,
        upper: str,
        work: str,
        root: str,
        read_only: bool = False,
        volumes: Optional[List[VolumeMount]] = None,
        console: Optional[str] = None,
        host_view: bool = False,
    ) -> None:
        self.app = app
        self.lower = lower
        self.upper = upper
        self.work = work
        self.root = root
        self.read_only = read_only
        self.volumes = [] if volumes is None else volumes
        self.console = console  # the pod's own terminal to bind at /dev/console (interactive pods)
        self.host_view = host_view  # fly: the host's own /proc, /sys and /dev, for host-level tools


def _escape_overlay(path: str) -> str:
    # overlayfs splits its options on commas and lowerdir on colons.
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def mount_overlay(plan: RootPlan) -> str:
    """Mount the app's writable root; returns 'overlay' or 'copy'.

    The overlay is `volatile` (Linux 5.10+; without it on older kernels): overlayfs otherwise syncs the
    whole file system holding the upper folder when it is unmounted, so a pod's exit waited for every
    dirty page of that file system, the host's as much as the app's (8 MB of unrelated writes: 6 ms).
    A pod's writable layer lives as long as the pod and is never mounted again after a crash.
    """
    for folder in (plan.upper, plan.work, plan.root):
        os.makedirs(folder, mode=0o755, exist_ok=True)
    options = (
        f"lowerdir={_escape_overlay(plan.lower)},upperdir={_escape_overlay(plan.upper)},"
        f"workdir={_escape_overlay(plan.work)}"
    )
    try:
        try:
            linux.mount("overlay", plan.root, "overlay", 0, options + ",volatile")
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            linux.mount("overlay", plan.root, "overlay", 0, options)  # a kernel without `volatile`
        return "overlay"
    except OSError:
        # No overlayfs (or an upper on a file system it refuses): a private copy, made once.
        if not os.listdir(plan.root):
            from ..treecopy import merge_tree  # the copy is the rare case: shutil stays off the start path

            merge_tree(plan.lower, plan.root, hardlink=False)
        linux.mount(plan.root, plan.root, None, linux.MS_BIND, None)
        return "copy"


def inside(root: str, path: str, *, folder: bool) -> str:
    """A path inside `root` (symlinks resolved as if `root` were `/`), created if missing. `root` is
    resolved itself (os.path.realpath, done once by build_root)."""
    target = join_resolved(root, path)
    if not os.path.lexists(target):
        parent = os.path.dirname(target)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if folder:
            os.mkdir(target, 0o755)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644))
    return target


def mount_proc(root: str) -> None:
    """A /proc of the pod's PID namespace, with the host-revealing paths masked or read-only."""
    proc = inside(root, "/proc", folder=True)
    linux.mount("proc", proc, "proc", NOSUID_NODEV_NOEXEC, None)
    for relative in MASKED_FILES:
        path = os.path.join(root, relative)
        if os.path.exists(path):
            linux.mount("/dev/null", path, None, linux.MS_BIND, None)
    for relative in MASKED_DIRS:
        path = os.path.join(root, relative)
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0")
    for relative in READ_ONLY:
        path = os.path.join(root, relative)
        if os.path.isdir(path):
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC, None)
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC, None)


def mount_sys(root: str) -> None:
    """/sys, read-only; it shows the pod's own network namespace."""
    target = inside(root, "/sys", folder=True)
    try:
        linux.mount("sysfs", target, "sysfs", linux.MS_RDONLY | NOSUID_NODEV_NOEXEC, None)
    except OSError:
        # sysfs cannot be mounted in a namespace that shares the host's network: bind it read-only.
        linux.mount("/sys", target, None, linux.MS_BIND | linux.MS_REC, None)
        linux.mount(target, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC, None)
    firmware = os.path.join(target, "firmware")
    if os.path.isdir(firmware):
        linux.mount("tmpfs", firmware, "tmpfs", linux.MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0")


def mount_dev(root: str, *, console: Optional[str]) -> None:
    """A fresh /dev holding exactly the specification's nodes, /dev/pts, /dev/shm and the usual links."""
    dev = inside(root, "/dev", folder=True)
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=755,size=65536k")
    for name in DEVICES:
        node = os.path.join(dev, name)
        os.close(os.open(node, os.O_CREAT | os.O_WRONLY, 0o666))
        # A bind of the host's node needs no CAP_MKNOD and works in every kind of namespace.
        linux.mount(f"/dev/{name}", node, None, linux.MS_BIND, None)
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    linux.mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620,gid=5")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    linux.mount("shm", shm, "tmpfs", NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")
    console_node = os.path.join(dev, "console")
    os.close(os.open(console_node, os.O_CREAT | os.O_WRONLY, 0o600))
    linux.mount(console or "/dev/null", console_node, None, linux.MS_BIND, None)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ):
        os.symlink(target, os.path.join(dev, name))


def mount_volume(root: str, volume: VolumeMount) -> None:
    """Bind a volume into the root; its target is created inside the root if missing."""
    is_folder = stat.S_ISDIR(os.stat(volume.source).st_mode)
    target = inside(root, volume.target, folder=is_folder)
    flags = linux.MS_BIND | (linux.MS_REC if volume.recursive else 0)
    linux.mount(volume.source, target, None, flags, None)
    if volume.read_only:
        remount = linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | (linux.MS_REC if volume.recursive else 0)
        linux.mount(volume.source, target, None, remount, None)


def build_root(plan: RootPlan) -> str:
    """Everything an app's root needs, in order; returns how the root was made ('overlay' or 'copy')."""
    how = mount_overlay(plan)
    root = os.path.realpath(plan.root)
    if plan.host_view:
        for path in ("/proc", "/sys", "/dev"):
            linux.mount(path, inside(root, path, folder=True), None, linux.MS_BIND | linux.MS_REC, None)
    else:
        mount_proc(root)
        mount_sys(root)
        mount_dev(root, console=plan.console)
    for volume in plan.volumes:
        mount_volume(root, volume)
    inside(root, "/tmp", folder=True)
    if plan.read_only:
        linux.mount(plan.root, plan.root, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY, None)
    return how
