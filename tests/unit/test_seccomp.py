"""Tests for rocket.stage1.seccomp: the BPF program's shape and verdicts, --seccomp, isolator resolution.

The programs are run by a small classic-BPF interpreter below, so every verdict is checked for both
architectures without root; tests/integration/test_stage1_primitives.py installs them in the kernel.
"""

from __future__ import annotations

import errno
import struct
from typing import Any, Dict, List, Optional, Sequence

import pytest

from rocket.errors import ManifestError, UsageError
from rocket.isolators import SECCOMP_ALL, SECCOMP_EMPTY, SECCOMP_REMOVE, SECCOMP_RETAIN, check_isolators
from rocket.stage1 import linux
from rocket.stage1.seccomp import (
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_X86_64,
    BPF_LD_W_ABS,
    BPF_RET_K,
    MODE_REMOVE,
    MODE_RETAIN,
    OFFSET_ARCH,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SeccompPlan,
    build_filter,
    compile_plan,
    default_filter_syscalls,
    errno_number,
    parse_seccomp_option,
    resolve_seccomp,
    unknown_syscalls,
)
from rocket.stage1.syscalls_aarch64 import SYSCALLS as AARCH64
from rocket.stage1.syscalls_x86_64 import SYSCALLS as X86_64

ARCHES = {"x86_64": (AUDIT_ARCH_X86_64, X86_64), "aarch64": (AUDIT_ARCH_AARCH64, AARCH64)}
EPERM = SECCOMP_RET_ERRNO | errno.EPERM
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17


def instructions(program: bytes) -> List[tuple]:
    assert len(program) % 8 == 0
    return [struct.unpack_from("<HBBI", program, offset) for offset in range(0, len(program), 8)]


def verdict(program: bytes, *, arch: str, nr: int, args: Sequence[int] = (), audit_arch: Optional[int] = None) -> int:
    """What the kernel would answer: a classic-BPF interpreter over struct seccomp_data."""
    audit = ARCHES[arch][0] if audit_arch is None else audit_arch
    padded = (list(args) + [0] * 6)[:6]
    data = struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, audit, 0, *padded)
    code_list = instructions(program)
    pc = accumulator = 0
    while True:
        assert 0 <= pc < len(code_list), "a jump left the program"
        code, jt, jf, k = code_list[pc]
        if code == 0x20:  # ld [k]
            (accumulator,) = struct.unpack_from("<I", data, k)
            pc += 1
        elif code == 0x15:  # jeq
            pc += 1 + (jt if accumulator == k else jf)
        elif code == 0x35:  # jge
            pc += 1 + (jt if accumulator >= k else jf)
        elif code == 0x45:  # jset
            pc += 1 + (jt if accumulator & k else jf)
        elif code == 0x05:  # ja
            pc += 1 + k
        elif code == 0x06:  # ret
            return k
        else:
            raise AssertionError(f"opcode {code:#x}")


def default_program(arch: str) -> bytes:
    return build_filter(mode=MODE_REMOVE, syscalls=default_filter_syscalls(), errno=errno.EPERM, arch=arch)


# --- Shape -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_the_arch_is_checked_first_and_a_mismatch_kills(arch: str) -> None:
    code = instructions(default_program(arch))
    assert code[0] == (BPF_LD_W_ABS, 0, 0, OFFSET_ARCH)
    assert code[1][0] == 0x15 and code[1][3] == ARCHES[arch][0] and code[1][1:3] == (1, 0)
    assert code[2] == (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)
    assert code[3] == (BPF_LD_W_ABS, 0, 0, 0)
    assert code[-1] == (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)
    for other in ARCHES:
        if other != arch:
            assert verdict(default_program(arch), arch=arch, nr=0, audit_arch=ARCHES[other][0]) == (
                SECCOMP_RET_KILL_PROCESS
            )
    assert verdict(default_program(arch), arch=arch, nr=0, audit_arch=0x40000003) == SECCOMP_RET_KILL_PROCESS  # i386


def test_x32_calls_are_killed_on_x86_64_but_nr_minus_one_passes() -> None:
    program = default_program("x86_64")
    assert verdict(program, arch="x86_64", nr=0x40000000 | X86_64["getpid"]) == SECCOMP_RET_KILL_PROCESS
    assert verdict(program, arch="x86_64", nr=0x40000000 | 521) == SECCOMP_RET_KILL_PROCESS  # x32 ptrace
    assert verdict(program, arch="x86_64", nr=-1) == SECCOMP_RET_ALLOW
    retain = build_filter(mode=MODE_RETAIN, syscalls={"getpid"}, errno=errno.EPERM, arch="x86_64")
    assert verdict(retain, arch="x86_64", nr=-1) == EPERM
    # aarch64 has no such ABI: no x32 rule at all.
    assert not any(k == 0x40000000 for _c, _t, _f, k in instructions(default_program("aarch64")))


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_default_program_denies_the_default_set_and_allows_the_rest(arch: str) -> None:
    program = default_program(arch)
    table = ARCHES[arch][1]
    removed = default_filter_syscalls()
    for name, number in table.items():
        expected = EPERM if name in removed else SECCOMP_RET_ALLOW
        if name == "clone3":
            expected = SECCOMP_RET_ERRNO | errno.ENOSYS
        assert verdict(program, arch=arch, nr=number, args=[SIGCHLD]) == expected, name
    assert verdict(program, arch=arch, nr=999) == SECCOMP_RET_ALLOW  # unknown to us: the kernel says ENOSYS


@pytest.mark.parametrize(("name", "number"), [("EPERM", 1), ("EACCES", 13), ("ENOSYS", 38), ("EACCESS", 13)])
def test_errno_is_encoded_in_the_return_value(name: str, number: int) -> None:
    assert errno_number(name) == number
    program = build_filter(mode=MODE_REMOVE, syscalls={"mount"}, errno=errno_number(name), arch="x86_64")
    assert verdict(program, arch="x86_64", nr=X86_64["mount"]) == SECCOMP_RET_ERRNO | number
    assert SECCOMP_RET_ERRNO | number in [k for code, _t, _f, k in instructions(program) if code == BPF_RET_K]


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_retain_allows_only_the_listed_calls(arch: str) -> None:
    table = ARCHES[arch][1]
    program = build_filter(mode=MODE_RETAIN, syscalls={"read", "write", "exit_group"}, errno=errno.EACCES, arch=arch)
    denied = SECCOMP_RET_ERRNO | errno.EACCES
    for name, number in table.items():
        expected = SECCOMP_RET_ALLOW if name in ("read", "write", "exit_group") else denied
        assert verdict(program, arch=arch, nr=number) == expected, name


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_long_lists_are_split_into_reachable_blocks(arch: str) -> None:
    table = ARCHES[arch][1]
    assert len(table) > 300
    program = build_filter(mode=MODE_RETAIN, syscalls=set(table), errno=errno.EPERM, arch=arch)
    assert max(max(jt, jf) for _c, jt, jf, _k in instructions(program)) <= 255
    for name, number in table.items():
        assert verdict(program, arch=arch, nr=number, args=[SIGCHLD]) == SECCOMP_RET_ALLOW, name
    assert verdict(program, arch=arch, nr=999) == EPERM


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_denying_unshare_also_denies_namespace_flags_of_clone(arch: str) -> None:
    table = ARCHES[arch][1]
    program = default_program(arch)
    assert verdict(program, arch=arch, nr=table["clone"], args=[SIGCHLD]) == SECCOMP_RET_ALLOW
    assert verdict(program, arch=arch, nr=table["clone"], args=[0x003D0F00]) == SECCOMP_RET_ALLOW  # threads
    assert verdict(program, arch=arch, nr=table["clone"], args=[CLONE_NEWUSER | SIGCHLD]) == EPERM
    assert verdict(program, arch=arch, nr=table["clone3"]) == SECCOMP_RET_ERRNO | errno.ENOSYS
    # Retaining clone but not unshare: the same rule; retaining unshare too: clone is plain.
    retain = build_filter(mode=MODE_RETAIN, syscalls={"clone", "clone3"}, errno=errno.EPERM, arch=arch)
    assert verdict(retain, arch=arch, nr=table["clone"], args=[CLONE_NEWUSER]) == EPERM
    assert verdict(retain, arch=arch, nr=table["clone"], args=[SIGCHLD]) == SECCOMP_RET_ALLOW
    assert verdict(retain, arch=arch, nr=table["clone3"]) == SECCOMP_RET_ERRNO | errno.ENOSYS
    free = build_filter(mode=MODE_RETAIN, syscalls={"clone", "clone3", "unshare"}, errno=errno.EPERM, arch=arch)
    assert verdict(free, arch=arch, nr=table["clone"], args=[CLONE_NEWUSER]) == SECCOMP_RET_ALLOW
    assert verdict(free, arch=arch, nr=table["clone3"]) == SECCOMP_RET_ALLOW
    # Removing clone itself: denied whatever the flags.
    none = build_filter(mode=MODE_REMOVE, syscalls={"clone", "unshare"}, errno=errno.EPERM, arch=arch)
    assert verdict(none, arch=arch, nr=table["clone"], args=[SIGCHLD]) == EPERM


def test_names_unknown_on_an_arch_are_skipped_and_reported() -> None:
    names = {"mount", "arch_prctl", "no_such_call"}
    with_unknown = build_filter(mode=MODE_REMOVE, syscalls=names, errno=1, arch="aarch64")
    assert with_unknown == build_filter(mode=MODE_REMOVE, syscalls={"mount"}, errno=1, arch="aarch64")
    assert unknown_syscalls(names, arch="aarch64") == ["arch_prctl", "no_such_call"]
    assert unknown_syscalls(names, arch="x86_64") == ["no_such_call"]
    warnings: List[str] = []
    plan = SeccompPlan(MODE_REMOVE, names, 1, source="--seccomp")
    assert compile_plan(plan, arch="aarch64", warnings=warnings) == with_unknown
    assert len(warnings) == 2 and "arch_prctl" in warnings[0] and "no_such_call" in warnings[1]
    assert all("--seccomp" in warning and "aarch64" in warning for warning in warnings)
    # The default set names calls of one architecture on purpose (iopl, uselib): no warning for those.
    warnings.clear()
    default = resolve_seccomp([], cli=None)
    assert default is not None
    compile_plan(default, arch="aarch64", warnings=warnings)
    compile_plan(SeccompPlan(MODE_REMOVE, {"iopl"}, 1, source="--seccomp"), arch="aarch64", warnings=warnings)
    assert warnings == []


def test_every_default_name_exists_somewhere_and_ordinary_calls_stay_allowed() -> None:
    names = default_filter_syscalls()
    required = {
        "mount", "umount2", "ptrace", "kexec_load", "kexec_file_load", "init_module", "finit_module",
        "delete_module", "bpf", "keyctl", "add_key", "request_key", "unshare", "setns", "pivot_root", "reboot",
        "swapon", "swapoff", "perf_event_open", "open_by_handle_at",
    }  # fmt: skip
    assert required <= names
    assert names <= set(X86_64) | set(AARCH64)
    ordinary = {
        "read", "write", "openat", "close", "execve", "clone", "fork", "vfork", "wait4", "exit_group", "mmap",
        "brk", "getpid", "socket", "connect", "chroot", "chown", "mknodat", "setuid", "setgid", "kill",
        "personality", "adjtimex", "name_to_handle_at", "sethostname", "prctl", "seccomp", "capset", "getrandom",
        "chdir", "ioctl", "futex", "rt_sigaction", "readlink", "readlinkat", "prlimit64", "rseq",
    }  # fmt: skip
    assert not names & ordinary
    assert default_filter_syscalls() is not default_filter_syscalls()  # a copy the caller may change


def test_wrong_arguments_are_bugs_and_unknown_arches_enosys() -> None:
    with pytest.raises(AssertionError):
        build_filter(mode="deny", syscalls={"mount"}, errno=1, arch="x86_64")
    with pytest.raises(AssertionError):
        build_filter(mode=MODE_REMOVE, syscalls={"mount"}, errno=0, arch="x86_64")
    with pytest.raises(OSError) as caught:
        build_filter(mode=MODE_REMOVE, syscalls={"mount"}, errno=1, arch="ppc64le")
    assert caught.value.errno == errno.ENOSYS
    assert build_filter(mode=MODE_REMOVE, syscalls={"mount"}, errno=1, arch="amd64") == build_filter(
        mode=MODE_REMOVE, syscalls={"mount"}, errno=1, arch="x86_64"
    )
    assert linux.canonical_arch("arm64") == "aarch64"


# --- rkt's --seccomp -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("mode=remove,errno=EPERM,mount,umount2", ("remove", ["mount", "umount2"], "EPERM")),
        ("mode=retain,read,write", ("retain", ["read", "write"], None)),
        (" mode=retain , errno=ENOSYS , @appc.io/all", ("retain", ["@appc.io/all"], "ENOSYS")),
        ("chmod,mode=remove", ("remove", ["chmod"], None)),
        ("mode=remove,@rocket/default-remove-set,chmod", ("remove", ["@rocket/default-remove-set", "chmod"], None)),
    ],
)
def test_parse_seccomp_option(text: str, parsed: tuple) -> None:
    assert parse_seccomp_option(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "mount,umount2",  # no mode
        "mode=deny,mount",
        "mode=remove,mode=retain,mount",
        "mode=remove,errno=EPERM,errno=EACCES,mount",
        "mode=remove,errno=ENOTANERRNO,mount",
        "mode=remove,errno=eperm,mount",
        "mode=remove",
        "mode=remove,errno=EPERM",
        "mode=remove,,mount",
        "mode=remove,Mount",
        "mode=remove,mount;reboot",
        "mode=remove,level=3,mount",
        "",
    ],
)
def test_bad_seccomp_options_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_seccomp_option(text)


def test_cli_plans() -> None:
    assert resolve_seccomp([], cli="mode=remove,errno=ENOSYS,chmod,fchmod") == SeccompPlan(
        MODE_REMOVE, {"chmod", "fchmod"}, errno.ENOSYS, source="--seccomp"
    )
    assert resolve_seccomp([], cli="mode=retain,@appc.io/all") is None
    # --seccomp replaces the manifest's isolator.
    isolators = [{"name": SECCOMP_RETAIN, "value": {"set": ["read"]}}]
    assert resolve_seccomp(isolators, cli="mode=remove,mount") == SeccompPlan(
        MODE_REMOVE, {"mount"}, errno.EPERM, source="--seccomp"
    )


# --- Isolators -------------------------------------------------------------------------------------


def isolator(name: str, entries: List[str], errno_name: Optional[str] = None) -> Dict[str, Any]:
    value: Dict[str, Any] = {"set": entries}
    if errno_name is not None:
        value["errno"] = errno_name
    return {"name": name, "value": value}


def test_no_isolator_means_the_default_remove_set_with_eperm() -> None:
    plan = resolve_seccomp([{"name": "os/linux/no-new-privileges", "value": True}], cli=None)
    assert plan == SeccompPlan(MODE_REMOVE, default_filter_syscalls(), errno.EPERM, source="default")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (isolator(SECCOMP_REMOVE, ["mount", "chmod"], "EACCES"), (MODE_REMOVE, {"mount", "chmod"}, errno.EACCES)),
        (isolator(SECCOMP_REMOVE, ["chmod"], ""), (MODE_REMOVE, {"chmod"}, errno.EPERM)),
        (isolator(SECCOMP_RETAIN, ["read", "write"]), (MODE_RETAIN, {"read", "write"}, errno.EPERM)),
        (isolator(SECCOMP_RETAIN, [SECCOMP_EMPTY]), (MODE_RETAIN, set(), errno.EPERM)),
        (isolator(SECCOMP_REMOVE, [SECCOMP_ALL], "ENOSYS"), (MODE_RETAIN, set(), errno.ENOSYS)),
        (isolator(SECCOMP_REMOVE, ["@rocket/default-remove-set", "chmod"]), (MODE_REMOVE, None, errno.EPERM)),
        (isolator(SECCOMP_REMOVE, ["@rkt/default-blacklist"]), (MODE_REMOVE, None, errno.EPERM)),
        (isolator(SECCOMP_RETAIN, [SECCOMP_ALL]), None),
        (isolator(SECCOMP_RETAIN, [SECCOMP_ALL, "read"]), None),
        (isolator(SECCOMP_REMOVE, [SECCOMP_EMPTY]), None),
    ],
)
def test_isolator_plans(entry: Dict[str, Any], expected: Optional[tuple]) -> None:
    check_isolators([entry], field="app.isolators", pod_level=False)  # each example is a valid manifest
    plan = resolve_seccomp([{"name": "resource/cpu", "value": {"limit": "1"}}, entry], cli=None)
    if expected is None:
        assert plan is None
        return
    assert plan is not None
    mode, names, number = expected
    if names is None:  # the default group, plus what the entry adds
        names = default_filter_syscalls() | ({"chmod"} if "chmod" in entry["value"]["set"] else set())
    assert (plan.mode, set(plan.syscalls), plan.errno, plan.source) == (mode, names, number, entry["name"])


@pytest.mark.parametrize(
    "entry",
    [
        isolator(SECCOMP_REMOVE, ["mount"], "ENOTANERRNO"),
        isolator(SECCOMP_REMOVE, ["@example.com/mine"]),
        isolator(SECCOMP_RETAIN, ["@appc.io/other"]),
    ],
)
def test_isolators_rocket_cannot_honour_are_usage_errors(entry: Dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        resolve_seccomp([entry], cli=None)


def test_retain_and_remove_sets_are_exclusive() -> None:
    both = [isolator(SECCOMP_RETAIN, ["read"]), isolator(SECCOMP_REMOVE, ["mount"])]
    with pytest.raises(ManifestError) as caught:
        check_isolators(both, field="app.isolators", pod_level=False)
    assert caught.value.rule == "conflict"
    with pytest.raises(UsageError):  # and resolution does not pick one if validation was skipped
        resolve_seccomp(both, cli=None)


def test_plans_compare_and_print() -> None:
    plan = SeccompPlan(MODE_REMOVE, ["mount"], errno.EPERM, source="default")
    assert plan == SeccompPlan(MODE_REMOVE, {"mount"}, errno.EPERM, source="default")
    assert plan != SeccompPlan(MODE_RETAIN, {"mount"}, errno.EPERM, source="default")
    assert "EPERM" in repr(plan) and "mount" in repr(plan)
    with pytest.raises(AssertionError):
        SeccompPlan("deny", [], errno.EPERM, source="default")
