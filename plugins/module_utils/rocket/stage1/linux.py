"""Thin ctypes wrappers over the Linux calls the pod supervisor makes; each raises OSError with the errno.

The supervisor starts under `python3 -I -S` on every pod start, so this module imports only ctypes, errno
and os, and does nothing at import beyond binding a few libc functions. Calls without a glibc wrapper
(pivot_root, seccomp, capset, close_range) go through syscall(2) with the numbers of the host's table;
x86_64 and aarch64 are supported.
"""

from __future__ import annotations

import ctypes
import errno
import os

# The standard `if TYPE_CHECKING:` idiom without importing typing, which costs more than this whole module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _ctypes import CFuncPtr
    from typing import Union

    StrPath = Union[str, bytes, "os.PathLike[str]"]

# Namespaces (clone(2), unshare(2), setns(2)).
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

# umount2(2) flags.
MNT_FORCE = 0x1
MNT_DETACH = 0x2
MNT_EXPIRE = 0x4
UMOUNT_NOFOLLOW = 0x8

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4

# close_range(2) flags.
CLOSE_RANGE_CLOEXEC = 0x4

_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}

_libc = ctypes.CDLL(None, use_errno=True)


def _bind(name: str, restype: object, *argtypes: object) -> CFuncPtr:
    function = getattr(_libc, name)
    function.restype = restype
    function.argtypes = argtypes
    return function


_unshare = _bind("unshare", ctypes.c_int, ctypes.c_int)
_setns = _bind("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_mount = _bind(
    "mount", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p
)
_umount2 = _bind("umount2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
_sethostname = _bind("sethostname", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
# prctl(2) and syscall(2) are variadic: no argtypes, every argument is passed as an explicit ctypes value.
_prctl = _libc.prctl
_prctl.restype = ctypes.c_int
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _error(call: str, filename: object = None, filename2: object = None) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}", filename, None, filename2)


def _path(path: StrPath | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


# --- Architecture and raw system calls ------------------------------------------------------------


def host_arch() -> str:
    """The host's architecture as the syscall tables name it ("x86_64", "aarch64"), else uname's name."""
    machine = os.uname().machine
    # A 32-bit userland on a 64-bit kernel reports the kernel's machine but uses other syscall numbers.
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return machine + "-32bit-userland"
    return canonical_arch(machine)


def canonical_arch(arch: str) -> str:
    """The syscall tables' name for `arch` ("amd64" -> "x86_64", "arm64" -> "aarch64"); others unchanged."""
    return _ARCHES.get(arch, arch)


def syscall_table(arch: str) -> dict[str, int]:
    """Syscall name -> number on `arch` ("x86_64"/"amd64", "aarch64"/"arm64"); OSError(ENOSYS) otherwise."""
    name = canonical_arch(arch)
    if name == "x86_64":
        from .syscalls_x86_64 import SYSCALLS
    elif name == "aarch64":
        from .syscalls_aarch64 import SYSCALLS
    else:
        raise OSError(errno.ENOSYS, f"no syscall table for architecture {arch!r} (rocket supports x86_64, aarch64)")
    return SYSCALLS


def syscall_number(name: str) -> int:
    """The number of syscall `name` on this host; OSError(ENOSYS) if the host's table has no such call."""
    number = syscall_table(host_arch()).get(name)
    if number is None:
        raise OSError(errno.ENOSYS, f"{name}: no such system call on {host_arch()}")
    return number


def _argument(value: object) -> object:
    if isinstance(value, int):
        return ctypes.c_long(value)  # a bare int would be passed as a 32-bit C int
    if isinstance(value, (str, bytes)):
        return ctypes.c_char_p(os.fsencode(value))
    if value is None:
        return ctypes.c_void_p(None)
    return value  # already a ctypes value or byref()


def syscall(name: str, *args: object) -> int:
    """Make system call `name` with integer, path, None or ctypes arguments; its result, or OSError."""
    result = _syscall(ctypes.c_long(syscall_number(name)), *[_argument(arg) for arg in args])
    if result == -1:
        raise _error(name)
    return int(result)


# --- Namespaces, mounts, identity ------------------------------------------------------------------


def unshare(flags: int) -> None:
    """Move this process into new namespaces (CLONE_NEW* flags)."""
    if _unshare(flags) != 0:
        raise _error("unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace open at `fd` (0 = any type, else the CLONE_NEW* it must be)."""
    if _setns(fd, nstype) != 0:
        raise _error("setns")


def mount(
    source: StrPath | None, target: StrPath, fstype: str | None = None, flags: int = 0, data: str | None = None
) -> None:
    """mount(2): `source` on `target` as `fstype` with MS_* `flags` and file-system options `data`."""
    encoded_data = None if data is None else data.encode()
    if _mount(_path(source), _path(target), _path(fstype), flags, encoded_data) != 0:
        raise _error("mount", source, target)


def umount2(target: StrPath, flags: int = 0) -> None:
    """Unmount `target` with MNT_* `flags` (MNT_DETACH for a lazy unmount)."""
    if _umount2(_path(target), flags) != 0:
        raise _error("umount2", target)


def pivot_root(new_root: StrPath, put_old: StrPath) -> None:
    """Make mount `new_root` this mount namespace's root, the old one under `put_old` ("." twice works)."""
    try:
        syscall("pivot_root", _path(new_root), _path(put_old))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, new_root, None, put_old) from None


def sethostname(name: str) -> None:
    """Set the host name of this process's UTS namespace."""
    encoded = name.encode()
    if _sethostname(encoded, len(encoded)) != 0:
        raise _error("sethostname", name)


# --- prctl -----------------------------------------------------------------------------------------


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) with integer arguments; returns the call's non-negative result."""
    args = [ctypes.c_ulong(arg & 0xFFFFFFFFFFFFFFFF) for arg in (arg2, arg3, arg4, arg5)]
    result = _prctl(ctypes.c_int(option), *args)
    if result == -1:
        raise _error("prctl")
    return int(result)


def set_no_new_privs() -> None:
    """Set no_new_privs: exec can no longer grant privileges (setuid bits, file capabilities)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_pdeathsig(sig: int) -> None:
    """Have the kernel send `sig` to this process when its parent (thread) dies; check getppid() after."""
    prctl(PR_SET_PDEATHSIG, sig)


def set_child_subreaper() -> None:
    """Adopt orphaned descendants, as an init does, so they can be reaped here."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_command_line(name: bytes) -> None:
    """Make /proc/self/cmdline (what `ps` shows) and the thread's name `name` instead of the arguments
    this process was started with: as setproctitle(3) does, by overwriting the arguments where the
    kernel keeps them (Python has its own copies). PR_SET_MM would need CAP_SYS_RESOURCE."""
    with open("/proc/self/stat", "rb") as stream:
        fields = stream.read().rsplit(b")", 1)[1].split()
    arg_start, arg_end = int(fields[45]), int(fields[46])  # proc(5)'s fields 48 and 49
    size = arg_end - arg_start
    if size < 2:
        return
    shown = name[: size - 2]
    # A NUL after the name and a last byte that is not: the kernel then reads up to the first NUL
    # (setproctitle's rule) instead of the whole area, so no trail of empty arguments shows.
    ctypes.memmove(arg_start, shown + b"\0" + b" " * (size - len(shown) - 1), size)
    short = ctypes.create_string_buffer(name[:15])  # the kernel copies it (16 bytes with the NUL)
    prctl(PR_SET_NAME, ctypes.addressof(short))


# --- File descriptors ------------------------------------------------------------------------------


def close_range_or_fallback(first: int, *, cloexec: bool = False) -> None:
    """Close (or, with `cloexec`, mark close-on-exec) every descriptor from `first` up."""
    try:
        syscall("close_range", first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC if cloexec else 0)
        return
    except OSError as exc:
        # ENOSYS before Linux 5.9, EINVAL for CLOSE_RANGE_CLOEXEC before 5.11; seccomp may say EPERM.
        if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
            raise
    try:
        candidates = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc yet: try every possible descriptor
        candidates = list(range(first, os.sysconf("SC_OPEN_MAX")))
    for fd in candidates:
        if fd < first:
            continue
        try:
            if cloexec:
                os.set_inheritable(fd, False)
            else:
                os.close(fd)
        except OSError as exc:  # EBADF: the listing's own descriptor, or a gap
            if exc.errno != errno.EBADF:
                raise
