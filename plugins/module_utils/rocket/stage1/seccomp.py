"""Seccomp for an app: the appc isolators and rkt's --seccomp resolved to a plan, compiled to classic BPF.

No libseccomp: the filter is a short, fixed shape of struct sock_filter instructions.

    load arch;  arch != native  -> KILL_PROCESS   (i386 compat calls, arm32: another numbering)
    load nr;    x86_64 only: nr >= 0x40000000 and nr != -1 -> KILL_PROCESS   (the x32 ABI)
    clone, clone3 rules when unshare is denied (see build_filter)
    nr == a listed call -> the listed action (ERRNO in mode "remove", ALLOW in mode "retain")
    the other action

The list is compared one call at a time; since Linux 5.11 the kernel caches the verdict of a filter
that depends only on the syscall number, so the length of the list costs nothing after the first call.
Resolution imports the engine's isolators and errors modules only when called (see caps.py).
"""

from __future__ import annotations

import ctypes
import errno as errnos
import struct

from . import linux
from .caps import CAP_SYS_ADMIN, current_effective_set

TYPE_CHECKING = False  # see linux.py
if TYPE_CHECKING:
    from typing import Iterable, Optional

    from ..errors import UsageError

MODE_REMOVE = "remove"
MODE_RETAIN = "retain"

SECCOMP_RET_KILL_PROCESS = 0x80000000  # read as SECCOMP_RET_KILL (the thread) before Linux 4.14
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
AUDIT_ARCH_X86_64 = 0xC000003E  # EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH_AARCH64 = 0xC00000B7  # EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
X32_SYSCALL_BIT = 0x40000000
BPF_MAXINSNS = 4096
MAX_ERRNO = 4095

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_MODE_FILTER = 2

# Classic BPF opcodes, and the offsets of struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];}.
BPF_LD_W_ABS = 0x20
BPF_JMP_JA = 0x05
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0_LOW = 16  # both supported architectures are little-endian

# Namespace flags of clone(2); CLONE_NEWTIME (0x80) is not among them: in clone()'s flags that bit is
# part of the exit signal, and only clone3 and unshare take it.
CLONE_NAMESPACE_FLAGS = (
    linux.CLONE_NEWNS
    | linux.CLONE_NEWCGROUP
    | linux.CLONE_NEWUTS
    | linux.CLONE_NEWIPC
    | linux.CLONE_NEWUSER
    | linux.CLONE_NEWPID
    | linux.CLONE_NEWNET
)

_AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}
_INSTRUCTION = struct.Struct("<HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k;}

# The default remove set: what lets a process reach past its pod to the host kernel or host-wide state.
# Docker's default profile is the model; every entry is something ordinary programs, busybox's everyday
# applets among them, do without. A name missing on one architecture is simply skipped there.
# fmt: off
_DEFAULT_REMOVE_SET = frozenset(
    {
        # Replace or extend the running kernel.
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "create_module", "get_kernel_syms", "query_module",  # gone since 2.6, x86_64 keeps the numbers
        # Mounts, old and new API: stage1 alone shapes the pod's file system.
        "mount", "umount2", "pivot_root", "open_tree", "open_tree_attr", "move_mount", "fsopen", "fsconfig",
        "fsmount", "fspick", "mount_setattr",
        # New namespaces: an unprivileged user namespace opens kernel code written for root. clone's
        # namespace flags and clone3 are handled in the filter itself (see build_filter).
        "unshare", "setns",
        # Other processes: tracing, their memory, their descriptors, kernel pointer order, perf events.
        "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "perf_event_open",
        # Kernel keyrings are not namespaced.
        "keyctl", "add_key", "request_key",
        # Kernel attack surface that exploits lean on: eBPF, userfaultfd (race widening), io_uring (Docker 25
        # blocks it too; libraries fall back to ordinary I/O).
        "bpf", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
        # Host-wide state: power, swap, process accounting, the clock, the kernel log, quotas, terminals.
        "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "syslog", "quotactl",
        "quotactl_fd", "vhangup",
        # Hardware ports, obsolete and removed interfaces.
        "iopl", "ioperm", "uselib", "nfsservctl", "lookup_dcookie", "_sysctl",
        # Open any inode by its handle, bypassing the mount tree ("shocker", the first Docker escape).
        "open_by_handle_at",
    }
)
# fmt: on
# Left allowed on purpose (Docker's profile restricts some of them):
#   adjtimex, clock_adjtime  read the clock discipline (ntp_gettime, chronyc); setting needs CAP_SYS_TIME.
#   name_to_handle_at        harmless without open_by_handle_at; systemd and udev use it for mount ids.
#   personality              queried by many programs; its risky flags weaken only the caller and are reset
#                            by a setuid exec (Docker filters arguments, which this generator does not).
#   sethostname, setdomainname  the pod has its own UTS namespace; CAP_SYS_ADMIN decides.
#   umount, stime, vm86      i386 names: the arch check already kills every i386 call.

# Groups an image may name in a seccomp isolator besides the spec's two wildcards; rkt's name is accepted
# for images built for rkt and means rocket's default set.
DEFAULT_GROUP = "@rocket/default-remove-set"
_GROUPS = {DEFAULT_GROUP: _DEFAULT_REMOVE_SET, "@rkt/default-blacklist": _DEFAULT_REMOVE_SET}
_SYSCALL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_GROUP_CHARS = _SYSCALL_CHARS | frozenset("@-.~/")


def _usage_error(message: str, *, hint: str, **context: object) -> UsageError:
    from ..errors import UsageError  # deferred, see caps.py

    return UsageError(message, hint=hint, **context)


def default_filter_syscalls() -> set[str]:
    """The system calls an app loses when neither its manifest nor the command line says otherwise."""
    return set(_DEFAULT_REMOVE_SET)


def errno_number(name: str) -> int:
    """The number of errno `name` (EPERM, EACCES, ENOSYS...); UsageError if there is no such errno."""
    # The spec's own example writes EACCESS; read it as the EACCES it means.
    value = errnos.EACCES if name == "EACCESS" else getattr(errnos, name, None)
    if not (name.startswith("E") and name.isupper() and isinstance(value, int) and 0 < value <= MAX_ERRNO):
        raise _usage_error(
            f"unknown errno {name!r} for seccomp",
            hint="use an errno name from errno(3) such as EPERM, EACCES or ENOSYS",
            errno=name,
        )
    return value


# --- The plan --------------------------------------------------------------------------------------


class SeccompPlan:
    """A resolved filter: mode "remove" or "retain", the syscall names, the errno, where it came from."""

    __slots__ = ("errno", "mode", "source", "syscalls")

    def __init__(self, mode: str, syscalls: Iterable[str], errno: int, *, source: str) -> None:
        if mode not in (MODE_REMOVE, MODE_RETAIN):
            raise AssertionError(f"bug: seccomp mode {mode!r}")
        self.mode = mode
        self.syscalls = frozenset(syscalls)
        self.errno = errno
        self.source = source

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeccompPlan):
            return NotImplemented
        return (self.mode, self.syscalls, self.errno, self.source) == (
            other.mode,
            other.syscalls,
            other.errno,
            other.source,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SeccompPlan({self.mode!r}, {sorted(self.syscalls)!r}, {errnos.errorcode.get(self.errno, self.errno)}, "
            f"source={self.source!r})"
        )


def compile_plan(plan: SeccompPlan, *, arch: Optional[str] = None, warnings: Optional[list[str]] = None) -> bytes:
    """The BPF program of `plan` for `arch` (default: this host); names unknown there go to `warnings`."""
    arch = arch or linux.host_arch()
    if warnings is not None:
        # The default set names calls of both architectures on purpose; only the plan's own names are news.
        unknown = unknown_syscalls(plan.syscalls - _DEFAULT_REMOVE_SET, arch=arch)
        warnings.extend(f"seccomp ({plan.source}): no system call {name} on {arch}, skipped" for name in unknown)
    return build_filter(mode=plan.mode, syscalls=set(plan.syscalls), errno=plan.errno, arch=arch)


def _expand(entries: Iterable[str], *, where: str) -> tuple[bool, set[str]]:
    """(whether @appc.io/all is among `entries`, the syscall names of the rest with groups expanded)."""
    from ..isolators import SECCOMP_ALL, SECCOMP_EMPTY  # deferred, see caps.py

    everything = False
    names: set[str] = set()
    for entry in entries:
        if entry == SECCOMP_ALL:
            everything = True
        elif entry == SECCOMP_EMPTY:
            continue
        elif entry.startswith("@"):
            if entry not in _GROUPS:
                raise _usage_error(
                    f"{where}: unknown seccomp group {entry!r}",
                    hint=f"use {SECCOMP_ALL}, {SECCOMP_EMPTY}, {DEFAULT_GROUP} or system call names",
                    group=entry,
                )
            names |= _GROUPS[entry]
        else:
            names.add(entry)
    return everything, names


def _plan(mode: str, entries: Iterable[str], errno_name: Optional[str], *, source: str) -> Optional[SeccompPlan]:
    """The plan for one retain or remove set; None when it filters nothing."""
    number = errno_number(errno_name) if errno_name else errnos.EPERM
    everything, names = _expand(entries, where=source)
    if mode == MODE_RETAIN:
        return None if everything else SeccompPlan(MODE_RETAIN, names, number, source=source)
    if everything:  # remove everything: retain nothing
        return SeccompPlan(MODE_RETAIN, (), number, source=source)
    return SeccompPlan(MODE_REMOVE, names, number, source=source) if names else None


def parse_seccomp_option(text: str) -> tuple[str, list[str], Optional[str]]:
    """rkt's `--seccomp mode=remove|retain[,errno=ENAME],name,...` as (mode, names, errno name); UsageError."""
    hint = "write --seccomp mode=remove,errno=EPERM,name1,name2 (or mode=retain,...)"
    mode: Optional[str] = None
    errno_name: Optional[str] = None
    names: list[str] = []
    for part in (piece.strip() for piece in text.split(",")):
        key, equals, value = part.partition("=")
        if equals and key in ("mode", "errno"):
            if (mode if key == "mode" else errno_name) is not None:
                raise _usage_error(f"--seccomp {text!r}: {key} is given twice", hint=hint, option=text)
            if key == "mode" and value not in (MODE_REMOVE, MODE_RETAIN):
                raise _usage_error(f"--seccomp {text!r}: mode must be remove or retain", hint=hint, option=text)
            if key == "mode":
                mode = value
            else:
                errno_number(value)
                errno_name = value
        elif equals or not part or not set(part) <= (_GROUP_CHARS if part.startswith("@") else _SYSCALL_CHARS):
            raise _usage_error(f"--seccomp {text!r}: {part!r} is not a system call name", hint=hint, option=text)
        else:
            names.append(part)
    if mode is None:
        raise _usage_error(f"--seccomp {text!r} does not say mode=remove or mode=retain", hint=hint, option=text)
    if not names:
        raise _usage_error(f"--seccomp {text!r} names no system call", hint=hint, option=text)
    return mode, names, errno_name


def resolve_seccomp(isolators: list, *, cli: Optional[str]) -> Optional[SeccompPlan]:
    """The app's seccomp plan, or None for no filter: --seccomp, else its seccomp isolator, else the default.

    `cli` (rkt's --seccomp syntax) replaces the manifest's seccomp isolators, as it did in rkt. An isolator
    set may hold syscall names, @appc.io/all, @appc.io/empty and @rocket/default-remove-set; its errno
    defaults to EPERM. Retaining everything or removing nothing means no filter at all.
    """
    from .. import isolators as iso  # deferred, see caps.py

    if cli is not None:
        mode, names, errno_name = parse_seccomp_option(cli)
        return _plan(mode, names, errno_name, source="--seccomp")
    found = [entry for entry in isolators if entry.get("name") in (iso.SECCOMP_RETAIN, iso.SECCOMP_REMOVE)]
    if len(found) > 1:
        raise _usage_error(
            f"an app can have only one of {iso.SECCOMP_RETAIN} and {iso.SECCOMP_REMOVE}",
            hint="keep one seccomp isolator (the manifest should not have validated)",
        )
    if not found:
        return SeccompPlan(MODE_REMOVE, _DEFAULT_REMOVE_SET, errnos.EPERM, source="default")
    name = found[0]["name"]
    value = found[0].get("value") or {}
    mode = MODE_RETAIN if name == iso.SECCOMP_RETAIN else MODE_REMOVE
    return _plan(mode, value.get("set") or [], value.get("errno"), source=name)


# --- The BPF program -------------------------------------------------------------------------------


def unknown_syscalls(syscalls: Iterable[str], *, arch: str) -> list[str]:
    """The names among `syscalls` that `arch` has no number for, sorted (build_filter skips them)."""
    table = linux.syscall_table(arch)
    return sorted(name for name in set(syscalls) if name not in table)


def _statement(code: int, k: int) -> bytes:
    return _INSTRUCTION.pack(code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> bytes:
    return _INSTRUCTION.pack(code, jt, jf, k)


def build_filter(*, mode: str, syscalls: set[str], errno: int, arch: str) -> bytes:
    """A seccomp BPF program (struct sock_filter[]) for `arch`; names `arch` does not have are skipped.

    Mode "remove" answers the listed calls with errno `errno` and allows the rest; mode "retain" allows
    the listed calls and answers the rest with `errno`. Another architecture's calls (and x32 calls on
    x86_64) kill the process. When unshare is denied, clone with namespace flags is denied too and
    clone3 answers ENOSYS (its flags live in memory a filter cannot read), so that libc falls back to
    clone: otherwise a new user namespace would be one clone() away.
    """
    name = linux.canonical_arch(arch)
    table = linux.syscall_table(name)
    if mode not in (MODE_REMOVE, MODE_RETAIN):
        raise AssertionError(f"bug: seccomp mode {mode!r}")
    if not 0 < errno <= MAX_ERRNO:
        raise AssertionError(f"bug: seccomp errno {errno} (1..{MAX_ERRNO}; 0 would fake success)")
    deny = SECCOMP_RET_ERRNO | errno
    listed_action, other_action = (deny, SECCOMP_RET_ALLOW) if mode == MODE_REMOVE else (SECCOMP_RET_ALLOW, deny)

    def denied(call: str) -> bool:
        return (call in syscalls) == (mode == MODE_REMOVE)

    program = [
        _statement(BPF_LD_W_ABS, OFFSET_ARCH),
        _jump(BPF_JMP_JEQ_K, _AUDIT_ARCH[name], 1, 0),
        _statement(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        _statement(BPF_LD_W_ABS, OFFSET_NR),
    ]
    if name == "x86_64":
        # As libseccomp does: nr -1 (a tracer skipping the call) passes on to the rules below.
        program += [
            _jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 2),
            _jump(BPF_JMP_JEQ_K, 0xFFFFFFFF, 1, 0),
            _statement(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        ]
    special: set[str] = set()
    if denied("unshare"):
        if not denied("clone"):
            special.add("clone")
            program += [
                _jump(BPF_JMP_JEQ_K, table["clone"], 0, 4),
                _statement(BPF_LD_W_ABS, OFFSET_ARG0_LOW),
                _jump(BPF_JMP_JSET_K, CLONE_NAMESPACE_FLAGS, 0, 1),
                _statement(BPF_RET_K, deny),
                _statement(BPF_RET_K, SECCOMP_RET_ALLOW),
            ]
        if not denied("clone3"):
            special.add("clone3")
            program += [
                _jump(BPF_JMP_JEQ_K, table["clone3"], 0, 1),
                _statement(BPF_RET_K, SECCOMP_RET_ERRNO | errnos.ENOSYS),
            ]
    numbers = sorted({table[call] for call in syscalls if call in table and call not in special})
    # A conditional jump reaches at most 255 instructions ahead: the list goes in blocks, each ending
    # with its own copy of the listed action.
    for start in range(0, len(numbers), 255):
        block = numbers[start : start + 255]
        program += [_jump(BPF_JMP_JEQ_K, number, len(block) - index, 0) for index, number in enumerate(block)]
        program += [_statement(BPF_JMP_JA, 1), _statement(BPF_RET_K, listed_action)]
    program.append(_statement(BPF_RET_K, other_action))
    if len(program) > BPF_MAXINSNS:
        raise AssertionError(f"bug: seccomp program of {len(program)} instructions")
    return b"".join(program)


# --- Installing ------------------------------------------------------------------------------------


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_filter(program: bytes) -> None:
    """Install `program` on this thread and what it execs; sets no_new_privs unless CAP_SYS_ADMIN is held.

    Call in a single-threaded child (the filter binds the calling thread), after everything the filter
    might forbid. seccomp(2) first, prctl(PR_SET_SECCOMP) on kernels before 3.17.
    """
    count, rest = divmod(len(program), _INSTRUCTION.size)
    if rest or not 0 < count <= BPF_MAXINSNS:
        raise AssertionError(f"bug: {len(program)} bytes is not a seccomp program")
    if CAP_SYS_ADMIN not in current_effective_set():
        linux.set_no_new_privs()  # the kernel refuses a filter from an unprivileged thread without it
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(count, ctypes.cast(buffer, ctypes.c_void_p))
    try:
        linux.syscall("seccomp", SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog))
    except OSError as exc:
        if exc.errno != errnos.ENOSYS:
            raise
        linux.prctl(linux.PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
