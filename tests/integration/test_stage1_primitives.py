"""The stage1 primitives against the real kernel: seccomp filters, capability sets, namespaces, pivot_root.

Every test that changes its process does so in a forked child, which reports through its exit code (and a
traceback on a pipe); mounts are made only in the child's own mount namespace, which dies with it. Needs
root. The resolution tests at the end need nothing and live here with the code they exercise.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import stat
import threading
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from rocket.errors import UsageError
from rocket.isolators import CAPS_REMOVE, CAPS_RETAIN, DEFAULT_CAPABILITIES
from rocket.stage1 import linux
from rocket.stage1.caps import (
    CAP_SYS_ADMIN,
    apply_capabilities,
    capability_name,
    capability_number,
    current_bounding_set,
    current_effective_set,
    drop_bounding_set,
    last_capability,
    resolve_capabilities,
)
from rocket.stage1.seccomp import (
    MODE_REMOVE,
    MODE_RETAIN,
    SeccompPlan,
    build_filter,
    compile_plan,
    install_filter,
    resolve_seccomp,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces, capabilities and mounts need root")
BUSYBOX = "/bin/busybox"
# What `busybox true` (static) asks of the kernel, found with `strace -f busybox true`; the interpreter
# makes no system call between installing the filter and execve. Names of the other architecture
# (arch_prctl, readlink on x86_64; readlinkat on aarch64) are skipped where they do not exist.
BUSYBOX_TRUE_SYSCALLS = {
    "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "readlink",
    "readlinkat", "getrandom", "mprotect", "prctl", "getuid", "exit_group",
}  # fmt: skip
NOBODY = 65534
CAP_MKNOD = 27
CAP_NET_BIND_SERVICE = 10
PTRACE_TRACEME = 0
KEYCTL_GET_KEYRING_ID = 0
KEY_SPEC_SESSION_KEYRING = -3
SIGCHLD = 17


def in_child(body: Callable[[], None]) -> None:
    """Run `body` in a forked child; fail with the child's traceback unless it returns normally."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            body()
        except BaseException:  # the child must report and leave, never unwind into pytest
            os.write(write_end, traceback.format_exc().encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        report = stream.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report or f"child ended with status {status:#x}"


def exec_in_child(prepare: Callable[[], None], argv: List[str]) -> Tuple[int, bytes]:
    """Fork, run `prepare`, exec `argv` with stdout on a pipe; (exit code or -signal, stdout)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            prepare()
            os.execv(argv[0], argv)
        except BaseException:  # as above
            traceback.print_exc()
        os._exit(126)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        output = stream.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def expect_errno(code: int, call: Callable[[], object]) -> None:
    with pytest.raises(OSError) as caught:
        call()
    assert caught.value.errno == code, caught.value


def status_fields(text: str) -> Dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def own_status() -> Dict[str, str]:
    return status_fields(Path("/proc/self/status").read_text())


def mask(caps: set) -> str:
    return f"{sum(1 << cap for cap in caps):016x}"


def default_caps() -> set:
    return {capability_number(name) for name in DEFAULT_CAPABILITIES}


def default_program() -> bytes:
    plan = resolve_seccomp([], cli=None)
    assert plan is not None
    return compile_plan(plan)


def raw_syscall(number: int, *args: int) -> Tuple[int, int]:
    """(result, errno) of a system call made by number, for calls the engine has no wrapper for."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(arg) for arg in args])
    return result, ctypes.get_errno()


# --- Seccomp ---------------------------------------------------------------------------------------


@needs_root
def test_default_filter_denies_escapes_and_keeps_ordinary_work(tmp_path: Path) -> None:
    def body() -> None:
        # A mount namespace of its own first: were the filter broken, the mount below would stay here.
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        install_filter(default_program())
        assert own_status()["Seccomp"] == "2"
        expect_errno(errno.EPERM, lambda: linux.mount("tmpfs", str(tmp_path), "tmpfs"))
        expect_errno(errno.EPERM, lambda: linux.unshare(linux.CLONE_NEWNS))
        expect_errno(errno.EPERM, lambda: linux.syscall("ptrace", PTRACE_TRACEME, 0, 0, 0))
        expect_errno(errno.EPERM, lambda: linux.syscall("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0))
        expect_errno(errno.EPERM, lambda: linux.pivot_root(str(tmp_path), str(tmp_path)))
        # A new user namespace through clone() is refused as unshare() is; clone3 pretends not to exist.
        result, code = raw_syscall(linux.syscall_number("clone"), linux.CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
        if result == 0:
            os._exit(3)  # the filter let it through: a grandchild, which must not run the test on
        assert (result, code) == (-1, errno.EPERM)
        assert raw_syscall(linux.syscall_number("clone3"), 0, 0) == (-1, errno.ENOSYS)
        # Ordinary work goes on: system calls, files, threads (clone3 falls back to clone), fork and exec.
        assert linux.syscall("getpid") == os.getpid()
        target = tmp_path / "data"
        target.write_bytes(b"written under seccomp")
        assert target.read_bytes() == b"written under seccomp"
        seen: List[bool] = []
        thread = threading.Thread(target=lambda: seen.append(True))
        thread.start()
        thread.join()
        assert seen == [True]
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/true", ["true"])
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    in_child(body)


@needs_root
@pytest.mark.skipif(linux.host_arch() != "x86_64", reason="the x32 ABI exists on x86_64 only")
def test_x32_system_calls_kill_the_process() -> None:
    program = default_program()
    pid = os.fork()
    if pid == 0:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        install_filter(program)
        raw_syscall(0x40000000 | linux.syscall_number("getpid"))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


@needs_root
@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs busybox-static")
def test_retain_filter_allows_what_busybox_true_needs_and_nothing_else() -> None:
    warnings: List[str] = []
    plan = SeccompPlan(MODE_RETAIN, BUSYBOX_TRUE_SYSCALLS, errno.EPERM, source="test")
    program = compile_plan(plan, warnings=warnings)
    assert len(warnings) == {"x86_64": 0, "aarch64": 2}[linux.host_arch()]  # arch_prctl, readlink

    assert exec_in_child(lambda: install_filter(program), [BUSYBOX, "true"]) == (0, b"")
    code, output = exec_in_child(lambda: install_filter(program), [BUSYBOX, "cat", "/etc/hostname"])
    assert code != 0 and output == b""  # openat (and write) denied
    fewer = build_filter(
        mode=MODE_RETAIN, syscalls=BUSYBOX_TRUE_SYSCALLS - {"execve"}, errno=errno.EPERM, arch=linux.host_arch()
    )
    # execve itself refused: the child stays Python, in a process that may not even mmap, and fails.
    assert exec_in_child(lambda: install_filter(fewer), [BUSYBOX, "true"])[0] != 0


@needs_root
def test_install_falls_back_to_prctl_without_seccomp_syscall(tmp_path: Path) -> None:
    def body() -> None:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        # A first filter makes seccomp(2) look absent, as on a kernel before 3.17.
        arch = linux.host_arch()
        install_filter(build_filter(mode=MODE_REMOVE, syscalls={"seccomp"}, errno=errno.ENOSYS, arch=arch))
        install_filter(build_filter(mode=MODE_REMOVE, syscalls={"mount"}, errno=errno.EACCES, arch=arch))
        expect_errno(errno.EACCES, lambda: linux.mount("tmpfs", tmp_path, "tmpfs"))

    in_child(body)


@needs_root
def test_filter_sets_no_new_privs_only_without_cap_sys_admin() -> None:
    def privileged() -> None:
        install_filter(default_program())
        assert own_status()["NoNewPrivs"] == "0"

    def unprivileged() -> None:
        apply_capabilities(default_caps(), uid=0)
        assert CAP_SYS_ADMIN not in current_effective_set()
        install_filter(default_program())
        assert own_status()["NoNewPrivs"] == "1"
        assert own_status()["Seccomp"] == "2"

    in_child(privileged)
    in_child(unprivileged)


# --- Capabilities ----------------------------------------------------------------------------------


@needs_root
def test_default_capabilities_set_every_mask_and_decide_what_root_may_do(tmp_path: Path) -> None:
    keep = resolve_capabilities([])
    assert keep == default_caps() and len(keep) == 14

    def body() -> None:
        linux.unshare(linux.CLONE_NEWUTS)  # while CAP_SYS_ADMIN is still there
        apply_capabilities(keep, uid=0)
        status = own_status()
        for field in ("CapBnd", "CapEff", "CapPrm", "CapInh"):
            assert status[field] == mask(keep), field
        assert status["CapAmb"] == mask(set())
        assert current_bounding_set() == keep
        assert current_effective_set() == keep
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # CAP_MKNOD is kept
        expect_errno(errno.EPERM, lambda: linux.sethostname("pod"))  # CAP_SYS_ADMIN is not

    in_child(body)


@needs_root
def test_removed_and_retained_capabilities_change_the_outcome(tmp_path: Path) -> None:
    def without_mknod() -> None:
        apply_capabilities(resolve_capabilities([], remove=["CAP_MKNOD"]), uid=0)
        expect_errno(errno.EPERM, lambda: os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3)))

    def with_sys_admin() -> None:
        linux.unshare(linux.CLONE_NEWUTS)
        apply_capabilities(resolve_capabilities([], retain=["CAP_SYS_ADMIN"]), uid=0)
        linux.sethostname("pod")
        assert os.uname().nodename == "pod"
        assert own_status()["CapBnd"] == mask({CAP_SYS_ADMIN})

    in_child(without_mknod)
    in_child(with_sys_admin)


@needs_root
def test_a_non_root_app_keeps_retained_capabilities_across_exec() -> None:
    def become_nobody(keep: set) -> Callable[[], None]:
        def prepare() -> None:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            apply_capabilities(keep, uid=NOBODY)

        return prepare

    code, output = exec_in_child(become_nobody({CAP_NET_BIND_SERVICE}), ["/bin/cat", "/proc/self/status"])
    assert code == 0
    status = status_fields(output.decode())
    assert status["Uid"].split() == [str(NOBODY)] * 4 and status["Gid"].split() == [str(NOBODY)] * 4
    assert status["Groups"] == ""
    for field in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
        assert status[field] == mask({CAP_NET_BIND_SERVICE}), field
    code, output = exec_in_child(become_nobody(set()), ["/bin/cat", "/proc/self/status"])
    status = status_fields(output.decode())
    assert code == 0 and status["CapEff"] == status["CapBnd"] == mask(set())


@needs_root
def test_bounding_set_helpers() -> None:
    assert last_capability() >= 40
    assert capability_name(last_capability() + 5) == f"CAP_{last_capability() + 5}"

    def body() -> None:
        effective = own_status()["CapEff"]
        drop_bounding_set({0, CAP_MKNOD})
        drop_bounding_set({0, CAP_MKNOD})  # idempotent: already-dropped entries are skipped
        assert current_bounding_set() == {0, CAP_MKNOD}
        assert own_status()["CapEff"] == effective  # the bounding set alone changes nothing else yet

    in_child(body)


# --- Namespaces, mounts, pivot_root ----------------------------------------------------------------


def mounted_anywhere_under(path: Path) -> bool:
    return any(str(path) in line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())


@needs_root
@pytest.mark.parametrize("put_old", ["old", "."])
def test_pivot_root_into_a_tmpfs(tmp_path: Path, put_old: str) -> None:
    new_root = tmp_path / "root"
    new_root.mkdir()

    def body() -> None:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        linux.mount("tmpfs", new_root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=1m,mode=755")
        (new_root / "marker").write_text("inside")
        if put_old == ".":  # runc's way: stack the old root under the new one, then detach it
            os.chdir(new_root)
            linux.pivot_root(".", ".")
            linux.umount2(".", linux.MNT_DETACH)
        else:
            (new_root / "old").mkdir()
            linux.pivot_root(new_root, new_root / "old")
            os.chdir("/")
            assert os.path.isdir("/old/proc")
            linux.umount2("/old", linux.MNT_DETACH)
            os.rmdir("/old")
        os.chdir("/")
        assert sorted(os.listdir("/")) == ["marker"]
        assert Path("/marker").read_text() == "inside"
        expect_errno(errno.EINVAL, lambda: linux.umount2("/marker"))

    in_child(body)
    assert not mounted_anywhere_under(tmp_path)
    assert list(new_root.iterdir()) == []  # the tmpfs lived in the child's namespace only


@needs_root
def test_mount_errors_name_the_paths(tmp_path: Path) -> None:
    def body() -> None:
        linux.unshare(linux.CLONE_NEWNS)
        with pytest.raises(OSError) as caught:
            linux.mount("tmpfs", tmp_path / "missing", "tmpfs")
        assert caught.value.errno == errno.ENOENT
        assert caught.value.filename2 == tmp_path / "missing"
        assert "mount" in str(caught.value)
        with pytest.raises(FileNotFoundError):
            linux.pivot_root(tmp_path / "missing", tmp_path / "missing")

    in_child(body)


@needs_root
def test_setns_returns_to_the_original_uts_namespace() -> None:
    def body() -> None:
        original = os.uname().nodename
        fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        linux.unshare(linux.CLONE_NEWUTS)
        linux.sethostname("elsewhere")
        assert os.uname().nodename == "elsewhere"
        expect_errno(errno.EINVAL, lambda: linux.setns(fd, linux.CLONE_NEWNET))  # wrong type
        linux.setns(fd, linux.CLONE_NEWUTS)
        assert os.uname().nodename == original

    in_child(body)


# --- prctl and descriptors -------------------------------------------------------------------------


def prctl_get(option: int) -> int:
    value = ctypes.c_int(-1)
    linux.prctl(option, ctypes.addressof(value))
    return value.value


@needs_root
def test_prctl_helpers() -> None:
    def body() -> None:
        assert linux.prctl(linux.PR_GET_NO_NEW_PRIVS) == 0
        linux.set_no_new_privs()
        assert linux.prctl(linux.PR_GET_NO_NEW_PRIVS) == 1
        linux.set_pdeathsig(signal.SIGKILL)
        assert prctl_get(linux.PR_GET_PDEATHSIG) == signal.SIGKILL
        linux.set_child_subreaper()
        assert prctl_get(linux.PR_GET_CHILD_SUBREAPER) == 1
        expect_errno(errno.EINVAL, lambda: linux.prctl(linux.PR_CAPBSET_READ, 4096))

    in_child(body)


@needs_root
@pytest.mark.parametrize("close_range_allowed", [True, False])
def test_close_range_or_fallback(close_range_allowed: bool) -> None:
    def body() -> None:
        if not close_range_allowed:  # the fallback through /proc/self/fd
            install_filter(
                build_filter(mode=MODE_REMOVE, syscalls={"close_range"}, errno=errno.ENOSYS, arch=linux.host_arch())
            )
        first = os.open("/dev/null", os.O_RDONLY)
        others = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]
        for fd in others:
            os.set_inheritable(fd, True)
        linux.close_range_or_fallback(others[0], cloexec=True)
        assert [os.get_inheritable(fd) for fd in others] == [False] * 3
        linux.close_range_or_fallback(others[0])
        for fd in others:
            expect_errno(errno.EBADF, lambda fd=fd: os.fstat(fd))
        os.fstat(first)  # below the range: still open

    in_child(body)


# --- Resolution (no root needed) -------------------------------------------------------------------


def caps_isolator(name: str, caps: List[str]) -> Dict[str, object]:
    return {"name": name, "value": {"set": caps}}


DEFAULT = set(DEFAULT_CAPABILITIES)


@pytest.mark.parametrize(
    ("isolators", "overrides", "expected"),
    [
        ([], {}, DEFAULT),
        ([caps_isolator(CAPS_RETAIN, ["CAP_NET_ADMIN", "CAP_CHOWN"])], {}, {"CAP_NET_ADMIN", "CAP_CHOWN"}),
        (
            [caps_isolator(CAPS_RETAIN, ["CAP_NET_ADMIN"]), caps_isolator(CAPS_RETAIN, ["CAP_SYS_TIME"])],
            {},
            {"CAP_NET_ADMIN", "CAP_SYS_TIME"},
        ),
        ([caps_isolator(CAPS_REMOVE, ["CAP_MKNOD", "CAP_NET_RAW"])], {}, DEFAULT - {"CAP_MKNOD", "CAP_NET_RAW"}),
        ([caps_isolator(CAPS_REMOVE, ["CAP_SYS_ADMIN"])], {}, DEFAULT),
        (
            [caps_isolator(CAPS_RETAIN, ["CAP_NET_ADMIN"])],
            {"retain": ["sys_admin", "cap_chown"]},
            {"CAP_SYS_ADMIN", "CAP_CHOWN"},
        ),
        ([caps_isolator(CAPS_RETAIN, ["CAP_NET_ADMIN"])], {"remove": ["CAP_KILL"]}, DEFAULT - {"CAP_KILL"}),
        ([], {"retain": []}, set()),
    ],
)
def test_resolve_capabilities(isolators: list, overrides: Dict[str, List[str]], expected: set) -> None:
    resolved = resolve_capabilities(isolators, **overrides)
    assert {capability_name(cap) for cap in resolved} == expected


@pytest.mark.parametrize(
    ("isolators", "overrides"),
    [
        ([caps_isolator(CAPS_RETAIN, ["CAP_CHOWN"]), caps_isolator(CAPS_REMOVE, ["CAP_KILL"])], {}),
        ([], {"retain": ["CAP_CHOWN"], "remove": ["CAP_KILL"]}),
        ([], {"retain": ["CAP_NOT_A_CAP"]}),
        ([caps_isolator(CAPS_REMOVE, ["CAP_FLY"])], {}),
    ],
)
def test_resolve_capabilities_rejects(isolators: list, overrides: Dict[str, Optional[List[str]]]) -> None:
    with pytest.raises(UsageError):
        resolve_capabilities(isolators, **overrides)


def test_capability_numbers() -> None:
    assert capability_number("CAP_CHOWN") == 0
    assert capability_number("CAP_SYS_ADMIN") == CAP_SYS_ADMIN
    assert capability_number("net_bind_service") == CAP_NET_BIND_SERVICE
    assert capability_number("CAP_CHECKPOINT_RESTORE") == 40
    assert capability_name(CAP_MKNOD) == "CAP_MKNOD"
    with pytest.raises(UsageError) as caught:
        capability_number("CAP_TELEPORT")
    assert caught.value.context["capability"] == "CAP_TELEPORT"
