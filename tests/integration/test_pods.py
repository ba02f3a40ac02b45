"""Real pods of a busybox image: lifecycle, isolation, isolators, volumes, handlers, metadata, escapes.

Every test runs the real `rocket` CLI as root: namespaces, overlay mounts, cgroups and seccomp are the
kernel's. Images are built from Debian's busybox-static.
"""

from __future__ import annotations

import json
import operator
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from images import image_manifest
from pods import BUSYBOX, Rocket, busybox_image
from rocket.build import build_image

DEFAULT_CAPBND = "00000000a80425fb"  # the specification's 14 capabilities

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="pods need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static"),
]


@pytest.fixture(scope="module")
def rocket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rocket]:
    tmp = tmp_path_factory.mktemp("pods")
    cli = Rocket(tmp / "data")
    cli("fetch", str(busybox_image(tmp)))
    env_image = busybox_image(
        tmp,
        "example.com/env",
        app={
            "exec": ["/bin/env"],
            "user": "0",
            "group": "0",
            "environment": [{"name": "FROM_IMAGE", "value": "image"}, {"name": "OVERRIDDEN", "value": "image"}],
        },
    )
    cli("fetch", str(env_image))
    cli("fetch", str(handlers_image(tmp, "example.com/handlers")))
    yield cli
    for pod in json.loads(cli("list", "--format=json").stdout):
        if pod["state"] == "running":
            cli("stop", "--force", pod["uuid"], check=False)
    cli("gc", "--grace-period=0s", check=False)


def handlers_image(tmp: Path, name: str, *, pre_start: str = "", app: str = "") -> Path:
    """An image whose pre-start handler, app and post-stop handler each append their name to
    /shared/order (a volume named shared); the pre-start handler then runs `pre_start`, the app `app`."""

    def appends(what: str, then: str = "") -> List[str]:
        return ["/bin/sh", "-c", f"echo {what} >> /shared/order" + (f"; {then}" if then else "")]

    return busybox_image(
        tmp,
        name,
        app={
            "exec": appends("app", app),
            "user": "0",
            "group": "0",
            "eventHandlers": [
                {"name": "pre-start", "exec": appends("pre-start", pre_start)},
                {"name": "post-stop", "exec": appends("post-stop")},
            ],
            "mountPoints": [{"name": "shared", "path": "/shared"}],
        },
    )


def detach(rocket: Rocket, *args: str) -> str:
    return rocket("run", "--detach", *args).stdout.strip().splitlines()[-1]


# -- lifecycle ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2])
def test_exit_codes_reach_run_and_status(rocket: Rocket, tmp_path: Path, code: int) -> None:
    uuid_file = tmp_path / "uuid"
    result = rocket.sh(f"exit {code}", "--uuid-file-save", str(uuid_file), check=False)
    assert result.returncode == code
    status = rocket.status(uuid_file.read_text().strip())
    assert status["state"] == "exited" and status["exit_code"] == code
    assert status["apps"]["busybox"]["exit_code"] == code
    text = dict(line.split("=", 1) for line in rocket("status", status["uuid"]).stdout.splitlines())
    assert text["state"] == "exited" and text["exit_code"] == text["app-busybox"] == str(code)
    # rkt's text form: local times to the millisecond with the zone, not seconds since the epoch
    for key in ("created", "started", "finished"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4} \S+", text[key]), text


def test_failing_app_stops_the_others(rocket: Rocket) -> None:
    started = time.monotonic()
    result = rocket(
        "run",
        "example.com/busybox", "--name", "waiter", "--exec", "/bin/sleep", "--", "30", "---",
        "example.com/busybox", "--name", "failer", "--exec", "/bin/sh", "--", "-c", "sleep 0.3; exit 2",
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert time.monotonic() - started < 20


def test_detach_stop_rm_gc(rocket: Rocket) -> None:
    uuid = detach(rocket, "example.com/busybox", "--exec", "/bin/sleep", "--", "600")
    status = rocket.status(uuid)
    assert status["state"] == "running" and isinstance(status["pid"], int)
    assert rocket("rm", uuid, check=False).returncode == 254  # running pods are not removed
    rocket("stop", uuid)
    assert rocket.status(uuid)["state"] == "exited"
    rocket("rm", uuid)
    assert uuid not in rocket("list").stdout
    assert not list((rocket.data / "pods").glob(f"*/{uuid}"))


def test_the_pods_init_lives_in_the_pods_v1_cgroups(rocket: Rocket) -> None:
    """The supervisor moves init into the pod's cgroup folder of every v1 hierarchy (cgroups.py, adopt);
    the app stays in its own folder below."""
    uuid = detach(rocket, "example.com/busybox", "--exec", "/bin/sleep", "--", "600")
    init_pid = json.loads((rocket.data / "pods" / "run" / uuid / "status.json").read_text())["init_pid"]
    v1_folders = [
        folder
        for folder in Path("/sys/fs/cgroup").glob(f"*/rocket/{uuid}")
        if not (folder / "cgroup.controllers").exists()  # v2 keeps processes in leaves only
    ]
    if not v1_folders:
        rocket("stop", uuid)
        pytest.skip("no v1 cgroup hierarchy here")
    deadline = time.monotonic() + 10  # `running` comes once init is forked; the app joins its folder after
    while time.monotonic() < deadline and not all(
        str(init_pid) in (folder / "cgroup.procs").read_text().split()
        and (folder / "busybox" / "cgroup.procs").read_text().split()
        for folder in v1_folders
    ):
        time.sleep(0.02)
    for folder in v1_folders:
        assert str(init_pid) in (folder / "cgroup.procs").read_text().split(), folder
        assert (folder / "busybox" / "cgroup.procs").read_text().split() != []
    rocket("stop", uuid)


def test_a_foreground_run_ends_the_cgroup_warmup_once_init_is_adopted(rocket: Rocket) -> None:
    """`rocket run` starts cgroup_warmup's thread (LIFETIME 2 s); the supervisor stops it 0.1 s after
    moving init, so a pod that runs on has no thread of it left: none sleeps in time.sleep."""
    uuid_file = rocket.data.parent / "warmup.uuid"
    uuid_file.unlink(missing_ok=True)
    run = subprocess.Popen(
        rocket.command(
            "run", f"--uuid-file-save={uuid_file}", "example.com/busybox", "--exec", "/bin/sleep", "--", "3"
        ),
        env=rocket.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        running = rocket.data / "pods" / "run"
        while time.monotonic() < deadline and not (
            uuid_file.exists() and (running / uuid_file.read_text().strip() / "status.json").exists()
        ):
            time.sleep(0.02)
        time.sleep(1.0)  # init was adopted when status.json appeared; the warm-up would live on to 2 s
        assert run.poll() is None
        sleeping = []
        for task in Path(f"/proc/{run.pid}/task").iterdir():
            if "nanosleep" in (task / "wchan").read_text():
                sleeping.append(task.name)
        assert sleeping == []
    finally:
        stderr = run.communicate(timeout=30)[1]
    assert run.returncode == 0, stderr


def test_killed_supervisor_leaves_nothing_after_gc(rocket: Rocket) -> None:
    uuid = detach(rocket, "example.com/busybox", "--memory=64M", "--exec", "/bin/sleep", "--", "600")
    supervisor = json.loads((rocket.data / "pods" / "run" / uuid / "supervisor").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while rocket.status(uuid)["state"] != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rocket.status(uuid)["state"] == "exited"
    rocket("gc", "--grace-period=0s")
    assert not list((rocket.data / "pods").glob(f"*/{uuid}"))
    assert str(rocket.data) not in Path("/proc/self/mountinfo").read_text()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/rocket/{uuid}"))


NOBODY = 65534


def as_nobody(rocket: Rocket, *args: str) -> subprocess.CompletedProcess:
    def drop() -> None:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)

    result = subprocess.run(
        rocket.command(*args), env=rocket.env, capture_output=True, text=True, preexec_fn=drop, check=False
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_an_unprivileged_user_is_refused_clearly_before_anything_is_made(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="rocket-nobody-", dir="/tmp"))  # tmp_path's parents are root's
    try:
        os.chown(home, NOBODY, NOBODY)
        aci = home / "busybox.aci"
        shutil.copy(busybox_image(tmp_path), aci)
        os.chmod(aci, 0o644)
        own = Rocket(home / "data")
        assert as_nobody(own, "fetch", str(aci)).returncode == 0  # images need no root
        refused = as_nobody(own, "run", "example.com/busybox", "--exec", "/bin/true")
        assert refused.returncode == 254 and "needs root" in refused.stderr, refused.stderr
        assert not list((home / "data" / "pods").glob("*/*"))
        prepared = as_nobody(own, "prepare", "example.com/busybox", "--exec", "/bin/true")
        uuid = prepared.stdout.strip()
        refused = as_nobody(own, "run-prepared", uuid)
        assert refused.returncode == 254 and "needs root" in refused.stderr, refused.stderr
        assert [path.name for path in (home / "data" / "pods").glob("*/*")] == [uuid]
        assert (home / "data" / "pods" / "prepared" / uuid).is_dir()  # still prepared, for root to run
        # root's store: the path and the reason, not a traceback
        roots = Rocket(tmp_path / "root-data")
        roots("list")
        os.chmod(tmp_path, 0o755)
        listed = as_nobody(roots, "list")
        assert listed.returncode == 254
        assert "Permission denied" in listed.stderr and str(roots.data) in listed.stderr, listed.stderr
    finally:
        shutil.rmtree(home)


# -- signals: the terminal, a closed output, what the apps inherit ----------------------------------

# An app that ends with 6 on TERM and tells which signal reached it.
SIGNAL_NAME = operator.attrgetter("name")
TRAPS = "trap 'echo GOT-INT' INT; trap 'echo GOT-TERM; exit 6' TERM; echo READY; while :; do sleep 0.1; done"


def foreground(rocket: Rocket, *args: str, ignore: Optional[signal.Signals] = None) -> subprocess.Popen:
    """`rocket run` in the foreground, its output on a pipe, once the app said READY (its pod's UUID in
    rocket.data/uuid)."""
    run = subprocess.Popen(
        rocket.command("run", "--uuid-file-save", str(rocket.data / "uuid"), *args),
        env=rocket.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        preexec_fn=(lambda: signal.signal(ignore, signal.SIG_IGN)) if ignore is not None else None,
    )
    assert run.stdout is not None
    assert run.stdout.readline() == b"READY\n"
    return run


def recorded_end(rocket: Rocket) -> Dict[str, Any]:
    """The status of the pod `foreground` started, which must have recorded its own end."""
    uuid = (rocket.data / "uuid").read_text().strip()
    status = rocket.status(uuid)
    assert status["state"] == "exited" and status["finished"] is not None and "note" not in status, status
    assert not list(Path("/sys/fs/cgroup").glob(f"*/rocket/{uuid}"))
    return status


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP], ids=SIGNAL_NAME)
def test_stop_signals_end_the_pod_in_order(rocket: Rocket, signum: signal.Signals) -> None:
    """`rocket stop`, ^C, ^\\ or a hung-up terminal: the apps get TERM and the pod's end is recorded
    (a hang-up used to kill the supervisor and leave the pod's cgroups behind)."""
    run = foreground(rocket, "example.com/busybox", "--exec", "/bin/sh", "--", "-c", TRAPS)
    run.send_signal(signum)
    assert run.wait(timeout=20) == 6
    assert run.stdout is not None and b"GOT-TERM" in run.stdout.read()
    assert recorded_end(rocket)["exit_code"] == 6


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT], ids=SIGNAL_NAME)
def test_a_signal_ignored_on_entry_stays_ignored(rocket: Rocket, signum: signal.Signals) -> None:
    """Under nohup (or as a shell's background job) the pod outlives the hang-up (or ^C)."""
    run = foreground(rocket, "example.com/busybox", "--exec", "/bin/sh", "--", "-c", TRAPS, ignore=signum)
    run.send_signal(signum)
    with pytest.raises(subprocess.TimeoutExpired):
        run.wait(timeout=1)
    run.terminate()
    assert run.wait(timeout=20) == 6


def test_a_closed_output_ends_the_pod_in_order(rocket: Rocket) -> None:
    """`rocket run … | head -1`: once the reader is gone the pod stops as a pipeline's writer would,
    and its log still gets what the app wrote (it used to end the supervisor with nothing recorded)."""
    script = "trap 'echo GOT-TERM; exit 5' TERM; echo READY; while :; do echo more; done"
    run = foreground(rocket, "example.com/busybox", "--exec", "/bin/sh", "--", "-c", script)
    assert run.stdout is not None
    run.stdout.close()
    assert run.wait(timeout=20) == 5
    status = recorded_end(rocket)
    assert status["exit_code"] == 5
    log = rocket("logs", status["uuid"]).stdout
    assert log.startswith("READY\nmore\n") and log.endswith("GOT-TERM\n")


def test_apps_start_with_every_signal_at_its_default(rocket: Rocket) -> None:
    """Ignored signals survive exec: Python's SIGPIPE and SIGXFSZ, the caller's SIGHUP (nohup) must not
    reach the app, nor a blocked mask."""
    result = subprocess.run(
        rocket.command("run", "example.com/busybox", "--exec", "/bin/cat", "--", "/proc/self/status"),
        env=rocket.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    fields = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    assert int(fields["SigIgn"], 16) == 0 and int(fields["SigBlk"], 16) == 0, fields


class Terminal:
    """What at_a_terminal saw: the output, rocket's exit code, the terminal's device and its modes after."""

    def __init__(self, output: bytes, code: int, device: int, modes_after: List[Any]) -> None:
        self.output = output
        self.code = code
        self.device = device
        self.modes_after = modes_after


def at_a_terminal(
    rocket: Rocket,
    *args: str,
    until: bytes = b"READY",
    keys: bytes = b"\x03",
    rows: int = 24,
    columns: int = 80,
    background: bool = False,
) -> Terminal:
    """Run `rocket ARGS` on a new terminal of `rows` x `columns` and type `keys` (^C) once the app
    printed `until`; with `background`, as a job that is not the terminal's foreground."""
    import fcntl
    import struct
    import termios

    command = rocket.command(*args)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    device = os.fstat(slave).st_rdev
    modes_before = termios.tcgetattr(slave)
    pid = os.fork()
    if pid == 0:
        os.close(master)
        login_tty(slave)
        if background:  # a job of this session in a process group of its own, not the foreground's
            job = os.fork()
            if job:
                os._exit(os.waitstatus_to_exitcode(os.waitpid(job, 0)[1]) & 0xFF)
            os.setpgid(0, 0)
        os.execvpe(command[0], command, rocket.env)
    os.close(slave)
    fd = master
    output = b""
    deadline = time.monotonic() + 60

    def more() -> bytes:
        """The terminal's next output; b"" once its last process is gone (EIO)."""
        if not select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
            os.kill(pid, signal.SIGKILL)  # a stopped or stuck rocket fails the test instead of hanging it
            os.waitpid(pid, 0)
            raise AssertionError(f"rocket did not end within 60 s: {output!r}")
        try:
            return os.read(fd, 1024)
        except OSError:
            return b""

    while until not in output:
        chunk = more()
        if not chunk:
            break
        output += chunk
    os.write(fd, keys)
    while True:
        chunk = more()
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    modes_after = termios.tcgetattr(fd)
    os.close(fd)
    assert modes_after == modes_before, "rocket left the terminal in other modes"
    return Terminal(output, os.waitstatus_to_exitcode(status), device, modes_after)


def login_tty(fd: int) -> None:
    """`fd` becomes this new session's controlling terminal, and stdin, stdout and stderr."""
    import fcntl
    import termios

    os.setsid()
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)


def test_ctrl_c_at_a_terminal_stops_the_pod_through_its_supervisor(rocket: Rocket) -> None:
    """The apps have a session of their own: ^C reaches rocket alone, and the apps get TERM, not INT."""
    seen = at_a_terminal(rocket, "run", "example.com/busybox", "--exec", "/bin/sh", "--", "-c", TRAPS)
    assert b"GOT-TERM" in seen.output and b"GOT-INT" not in seen.output, seen.output
    assert seen.code == 6


def test_ctrl_c_at_an_interactive_app_is_the_apps(rocket: Rocket) -> None:
    """With --interactive the app has a terminal: ^C interrupts what it runs, and the pod goes on."""
    script = "trap 'echo GOT-INT' INT; echo READY; sleep 5; echo STILL-HERE; exit 4"
    seen = at_a_terminal(rocket, "run", "--interactive", "example.com/busybox", "--exec", "/bin/sh", "--", "-c", script)
    assert b"GOT-INT" in seen.output and b"STILL-HERE" in seen.output, seen.output
    assert seen.code == 4


# -- environment, identity, files -------------------------------------------------------------------


def test_environment_precedence(rocket: Rocket) -> None:
    out = rocket("run", "example.com/env", "--set-env=OVERRIDDEN=cli", "--set-env=AC_APP_NAME=spoofed").stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["FROM_IMAGE"] == "image" and env["OVERRIDDEN"] == "cli"
    assert env["AC_APP_NAME"] == "env" and env["container"] == "rocket"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["AC_METADATA_URL"].startswith("http://127.0.0.1:2375/")


def test_user_group_hostname(rocket: Rocket) -> None:
    out = rocket.sh("id; hostname", "--hostname=podhost", image="example.com/busybox")
    # per-app flags come after the image; --hostname is a pod flag before it
    assert "podhost" in out.stdout
    out = rocket("run", "example.com/busybox", "--user=app", "--group=app", "--exec", "/bin/id").stdout
    assert "uid=1000(app) gid=1000(app)" in out and "2000(extra)" in out


def test_volumes_read_only_and_read_write(rocket: Rocket, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host")
    script = "cat /rw/in; echo out > /rw/out; echo nope > /ro/x && echo RO-WRITABLE; true"
    out = rocket(
        "run",
        f"--volume=rw,kind=host,source={host}",
        f"--volume=ro,kind=host,source={host},readOnly=true",
        "example.com/busybox", "--mount=volume=rw,target=/rw", "--mount=volume=ro,target=/ro",
        "--exec", "/bin/sh", "--", "-c", script,
    )  # fmt: skip
    assert "from host" in out.stdout and "RO-WRITABLE" not in out.stdout
    assert (host / "out").read_text() == "out\n" and not (host / "x").exists()


def test_empty_volume_mode_and_owner(rocket: Rocket) -> None:
    out = rocket(
        "run",
        "--volume=scratch,kind=empty,mode=0700,uid=1000,gid=2000",
        "example.com/busybox", "--mount=volume=scratch,target=/scratch",
        "--exec", "/bin/stat", "--", "-c", "%a %u %g", "/scratch",
    ).stdout  # fmt: skip
    assert out.split() == ["700", "1000", "2000"]


def test_pre_start_app_post_stop_order(rocket: Rocket, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    rocket("run", f"--volume=shared,kind=host,source={shared}", "example.com/handlers")
    assert (shared / "order").read_text().split() == ["pre-start", "app", "post-stop"]


def test_a_stop_during_a_pre_start_handler_stops_it_and_starts_no_app(rocket: Rocket, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    rocket("fetch", str(handlers_image(tmp_path, "example.com/slow-start", pre_start="exec sleep 30")))
    uuid = detach(rocket, f"--volume=shared,kind=host,source={shared}", "example.com/slow-start")
    deadline = time.monotonic() + 10
    while not (shared / "order").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    rocket("stop", uuid)
    assert time.monotonic() - started < 5  # not the handler's 30 s, nor the stop timeout
    assert rocket.status(uuid)["state"] == "exited"
    assert (shared / "order").read_text().split() == ["pre-start", "post-stop"]


def test_rootfs_changes_stay_in_the_pod_and_readonly_rootfs(rocket: Rocket) -> None:
    rocket.sh("echo changed > /bin/added")
    assert "changed" not in rocket.sh("cat /bin/added 2>&1; true").stdout  # a new pod starts from the image
    out = rocket(
        "run", "example.com/busybox", "--readonly-rootfs", "--exec", "/bin/sh", "--", "-c", "touch /x || echo RO"
    )
    assert "RO" in out.stdout


def test_the_writable_root_is_a_volatile_overlay(rocket: Rocket) -> None:
    """Unmounting a plain overlay syncs the whole file system of its upper folder: a pod's exit would
    wait for the host's dirty pages. `volatile` (Linux 5.10+) skips that (stage1/rootfs.py)."""
    release = tuple(int(part) for part in os.uname().release.split(".")[:2] if part.isdigit())
    if release < (5, 10):
        pytest.skip(f"kernel {os.uname().release} has no volatile overlays")
    mounts = rocket.sh("cat /proc/self/mountinfo").stdout.splitlines()
    root = [line for line in mounts if line.split()[4] == "/"]
    assert len(root) == 1, mounts
    fields = root[0].split()
    assert fields[fields.index("-") + 1] == "overlay"
    options = fields[-1].split(",")
    assert "volatile" in options or "fsync=volatile" in options, root[0]  # newer kernels show the latter


# -- isolators ---------------------------------------------------------------------------------------


def test_memory_limit_kills_an_allocation_over_it(rocket: Rocket) -> None:
    big = rocket(
        "run",
        "example.com/busybox",
        "--memory=32M",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "head -c 100m /dev/zero | tail",
        check=False,
    )
    assert big.returncode != 0
    small = rocket(
        "run",
        "example.com/busybox",
        "--memory=32M",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "head -c 4m /dev/zero | tail | true",
    )
    assert small.returncode == 0


def test_capabilities_and_seccomp(rocket: Rocket) -> None:
    out = rocket.sh("grep -E 'CapBnd|Seccomp:' /proc/self/status").stdout
    assert f"CapBnd:\t{DEFAULT_CAPBND}" in out and "Seccomp:\t2" in out
    removed = rocket(
        "run",
        "example.com/busybox",
        "--caps-remove=CAP_CHOWN",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "grep CapBnd /proc/self/status",
    ).stdout
    assert int(removed.split()[-1], 16) == int(DEFAULT_CAPBND, 16) & ~1


# -- escapes -----------------------------------------------------------------------------------------


ESCAPES = {
    "proc-1-exe-writable": "echo x > /proc/1/exe",
    "proc-1-root-listable": "ls /proc/1/root/",
    "mount": "mount -t tmpfs none /tmp",
    "sysrq": "echo h > /proc/sysrq-trigger && grep -q . /proc/sysrq-trigger",
    "kcore": "head -c 1 /proc/kcore | grep -q .",
    "proc-1-environ": "grep -q . /proc/1/environ",
    "proc-1-cmdline-of-init-mem": "head -c 1 /proc/1/mem",
}


@pytest.mark.parametrize("attempt", sorted(ESCAPES))
def test_escape_attempts_fail(rocket: Rocket, attempt: str) -> None:
    result = rocket.sh(ESCAPES[attempt], check=False)
    assert result.returncode != 0, (attempt, result.stdout, result.stderr)


def test_host_processes_are_invisible(rocket: Rocket) -> None:
    pids = [line.split()[0] for line in rocket.sh("ps -o pid").stdout.splitlines()[1:]]
    assert len(pids) <= 4 and "1" in pids


def test_no_descriptor_of_rockets_caller_reaches_the_apps(rocket: Rocket, tmp_path: Path) -> None:
    """Whatever the caller of rocket left open (here a file on descriptor 42) stays out of the apps,
    the handlers and entered commands: only 0, 1 and 2 go through exec."""
    secret = os.open(tmp_path / "secret", os.O_RDWR | os.O_CREAT, 0o600)
    os.dup2(secret, 42, inheritable=True)
    try:
        listing = subprocess.run(
            rocket.command("run", "example.com/busybox", "--exec", "/bin/ls", "--", "/proc/self/fd"),
            env=rocket.env,
            pass_fds=(42,),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    finally:
        os.close(42)
        os.close(secret)
    assert set(listing) <= {"0", "1", "2", "3"}, listing  # 3: ls's own listing of the folder


def test_apps_get_a_services_umask_whatever_the_callers(rocket: Rocket) -> None:
    result = subprocess.run(
        rocket.command("run", "example.com/busybox", "--exec", "/bin/sh", "--", "-c", "umask"),
        env=rocket.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.umask(0o077),
    )
    assert result.stdout.strip() == "0022"


def test_the_pods_init_shows_a_name_not_rockets_command_line(rocket: Rocket) -> None:
    """Anyone in the pod reads /proc/1/cmdline: PID 1, a fork of `rocket run`, showed its whole command
    line there, every app's --set-env values and the host's folders with it."""
    script = "tr '\\0' '|' < /proc/1/cmdline; echo; cat /proc/1/comm"
    out = rocket(
        "run", "example.com/busybox", "--set-env=TOKEN=s3cret-value", "--exec", "/bin/sh", "--", "-c", script
    ).stdout
    assert out.splitlines() == ["rocket-init|", "rocket-init"], out
    assert "s3cret" not in out and str(rocket.data) not in out


# -- enter and metadata ------------------------------------------------------------------------------


def test_enter_gets_the_apps_restrictions(rocket: Rocket) -> None:
    uuid = detach(rocket, "example.com/busybox", "--caps-remove=CAP_CHOWN", "--exec", "/bin/sleep", "--", "600")
    try:
        app = rocket(
            "enter",
            uuid,
            "/bin/sh",
            "-c",
            "grep -E 'CapBnd|Seccomp:' /proc/1/status /proc/self/status; cat /proc/self/cgroup",
        ).stdout
        assert app.count("Seccomp:\t2") == 1  # /proc/1 is the pod's init: only the entered shell shows
        bounding = [line.split()[-1] for line in app.splitlines() if "self/status:CapBnd" in line]
        assert bounding == [format(int(DEFAULT_CAPBND, 16) & ~1, "016x")]
        assert all(line.endswith(":/") for line in app.splitlines() if line[:1].isdigit())  # cgroup namespace root
    finally:
        rocket("stop", uuid)


def metadata_script(path: str, token_override: Optional[str] = None) -> str:
    url = "$AC_METADATA_URL" if token_override is None else f"http://127.0.0.1:2375/{token_override}"
    return f'wget -q -S -O - --header "Metadata-Flavor: AppContainer" {url}/acMetadata/v1{path} 2>&1'


def test_metadata_service_from_inside_and_another_pods_token(rocket: Rocket) -> None:
    out = rocket.sh(metadata_script("/pod/uuid") + "; echo; " + metadata_script("/apps/busybox/image/manifest")).stdout
    assert "text/plain; charset=us-ascii" in out and "application/json" in out
    assert '"name": "example.com/busybox"' in out or '"name":"example.com/busybox"' in out
    first = detach(rocket, "example.com/busybox", "--exec", "/bin/sleep", "--", "600")
    try:
        token = rocket("enter", first, "/bin/sh", "-c", "echo $AC_METADATA_URL").stdout.strip().rsplit("/", 1)[-1]
        assert len(token) >= 22
        refused = rocket.sh(metadata_script("/pod/uuid", token_override=token) + "; true").stdout
        assert "401" in refused
    finally:
        rocket("stop", first)


# -- flavors, restart, logs, export, interactive -----------------------------------------------------


def test_fly_flavor_shares_the_hosts_namespaces(rocket: Rocket) -> None:
    out = rocket(
        "run",
        "--flavor=fly",
        "example.com/busybox",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "hostname; ls /proc | grep -c .; grep Seccomp: /proc/self/status",
    ).stdout.split()
    assert out[0] == os.uname().nodename
    assert int(out[1]) > 20  # the host's processes are visible
    assert out[-1] == "0"  # no seccomp filter by default


def test_restart_on_failure_with_backoff(rocket: Rocket, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    script = "echo run >> /state/runs; [ $(grep -c run /state/runs) -ge 3 ]"
    started = time.monotonic()
    rocket(
        "run", "--restart=on-failure", f"--volume=state,kind=host,source={state}",
        "example.com/busybox", "--mount=volume=state,target=/state", "--exec", "/bin/sh", "--", "-c", script,
    )  # fmt: skip
    assert (state / "runs").read_text().split() == ["run", "run", "run"]
    assert time.monotonic() - started >= 0.5 + 1.0  # two backoffs: 0.5 s, then 1 s


def test_a_stop_during_the_backoff_ends_the_pod_at_once(rocket: Rocket) -> None:
    """The third failure is followed by a 2 s backoff: `rocket stop` then must neither wait for it nor
    start the app a fourth time (it did both: a stop could take a minute and end with a restart)."""
    script = "echo run; exit 1"
    uuid = detach(rocket, "--restart=always", "example.com/busybox", "--exec", "/bin/sh", "--", "-c", script)
    deadline = time.monotonic() + 10
    while rocket("logs", uuid).stdout.count("run") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    rocket("stop", uuid)
    assert time.monotonic() - started < 1.5
    time.sleep(2.5)
    assert rocket("logs", uuid).stdout.count("run") == 3
    assert rocket.status(uuid)["exit_code"] == 1


def test_stop_waits_as_long_as_the_pods_stop_timeout(rocket: Rocket, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that ignores TERM is killed after the pod's --stop-timeout; `stop` waits that long (and a
    margin) rather than a fixed time, so a pod given a long timeout is not reported as stuck."""
    from rocket import lifecycle
    from rocket.pod import Pod

    monkeypatch.setattr(lifecycle, "STOP_WAIT", 0.5)  # shorter than the pod's 3 s, which must win
    monkeypatch.setattr(lifecycle, "STOP_MARGIN", 2.0)
    script = "trap '' TERM; echo READY; while :; do sleep 0.1; done"
    uuid = detach(rocket, "--stop-timeout=3", "example.com/busybox", "--exec", "/bin/sh", "--", "-c", script)
    deadline = time.monotonic() + 10
    while "READY" not in rocket("logs", uuid).stdout and time.monotonic() < deadline:
        time.sleep(0.05)  # TERM before the trap would end the app at once
    started = time.monotonic()
    lifecycle.stop([Pod.find(rocket.data, uuid)])
    assert 3 <= time.monotonic() - started < 5
    assert rocket.status(uuid)["apps"]["busybox"]["signal"] == "SIGKILL"


def test_logs_and_status_wait(rocket: Rocket) -> None:
    uuid = detach(
        rocket, "example.com/busybox", "--exec", "/bin/sh", "--", "-c", "echo line1; sleep 0.5; echo line2; exit 7"
    )
    rocket("status", "--wait", uuid)
    assert rocket.status(uuid)["exit_code"] == 7
    assert rocket("logs", uuid).stdout.split() == ["line1", "line2"]


def test_export_an_app_with_its_changes(rocket: Rocket, tmp_path: Path) -> None:
    uuid_file = tmp_path / "uuid"
    rocket.sh("echo new > /etc/added; rm /bin/cat", "--uuid-file-save", str(uuid_file))
    exported = tmp_path / "exported.aci"
    rocket("export", uuid_file.read_text().strip(), str(exported))
    listing = subprocess.run(["tar", "-tzf", str(exported)], capture_output=True, text=True, check=True).stdout.split()
    assert "rootfs/etc/added" in listing and "rootfs/bin/cat" not in listing and "rootfs/bin/sh" in listing
    assert rocket("image", "validate", str(exported)).returncode == 0


def test_interactive_app_gets_a_terminal_of_its_own(rocket: Rocket) -> None:
    """The app gets a new pseudo-terminal, not the operator's: it leads that terminal's session (so job
    control works), sees the operator's window size, and cannot reach the operator's terminal, whose
    input queue a controlling terminal's owner could fill with commands (TIOCSTI). The operator's
    terminal is raw while the pod runs and as it was afterwards (at_a_terminal checks)."""
    # Fields 6 and 7 of /proc/self/stat: the session and the controlling terminal's device number.
    script = "read -r pid comm state ppid pgrp session tty rest < /proc/self/stat; echo SESSION=$session/$pid"
    script += "; echo TTY=$tty; stty size; [ -t 0 ] && [ -t 1 ] && echo TTY-OK; read x; exit $x"
    seen = at_a_terminal(
        rocket, "run", "--interactive", "example.com/busybox", "--exec", "/bin/sh", "--", "-c", script,
        until=b"TTY-OK", keys=b"5\n", rows=33, columns=101,
    )  # fmt: skip
    lines = seen.output.decode().replace("\r", "").splitlines()
    assert seen.code == 5 and "TTY-OK" in lines, lines
    session = next(line for line in lines if line.startswith("SESSION=")).split("=")[1].split("/")
    assert session[0] == session[1]  # the app leads its session
    tty_number = int(next(line for line in lines if line.startswith("TTY=")).split("=")[1])
    assert tty_number not in (0, seen.device)  # a controlling terminal, and not the operator's
    assert "33 101" in lines


def test_enter_right_after_a_detached_start_waits_for_the_app(rocket: Rocket, tmp_path: Path) -> None:
    """`run --detach` returns once the pod runs, maybe before its app does (here a pre-start handler
    takes a second): an `enter` at once waits for the app instead of saying it has no process."""
    shared = tmp_path / "shared"
    shared.mkdir()
    rocket("fetch", str(handlers_image(tmp_path, "example.com/late-app", pre_start="sleep 1", app="exec sleep 600")))
    uuid = detach(rocket, f"--volume=shared,kind=host,source={shared}", "example.com/late-app")
    try:
        entered = rocket("enter", uuid, "/bin/cat", "/shared/order")
    finally:
        rocket("stop", uuid)
    assert entered.stdout.split() == ["pre-start", "app"]


def test_enter_at_a_terminal_gets_a_terminal_of_its_own(rocket: Rocket) -> None:
    """As for --interactive: the entered command runs the pod's binaries, which must not get the
    operator's terminal as their controlling terminal (TIOCSTI)."""
    uuid = detach(rocket, "example.com/busybox", "--exec", "/bin/sleep", "--", "600")
    script = "read -r pid comm state ppid pgrp session tty rest < /proc/self/stat; echo TTY=$tty"
    script += "; stty size; echo TTY-OK; read x; exit $x"
    try:
        seen = at_a_terminal(
            rocket, "enter", uuid, "/bin/sh", "-c", script, until=b"TTY-OK", keys=b"7\n", rows=40, columns=120
        )
    finally:
        rocket("stop", uuid)
    lines = seen.output.decode().replace("\r", "").splitlines()
    assert seen.code == 7, lines
    tty_number = int(next(line for line in lines if line.startswith("TTY=")).split("=")[1])
    assert tty_number not in (0, seen.device) and "40 120" in lines, lines


def test_a_background_job_gets_no_pod_terminal(rocket: Rocket) -> None:
    """Raw mode from a background job would stop it (SIGTTOU) and take the foreground job's keys:
    refused, with the terminal left as it was (at_a_terminal checks) and no pod made."""
    uuid = detach(rocket, "example.com/busybox", "--exec", "/bin/sleep", "--", "600")
    before = sorted(path.name for path in (rocket.data / "pods").glob("*/*"))
    try:
        for args in (("run", "--interactive", "example.com/busybox", "--exec", "/bin/true"), ("enter", uuid)):
            seen = at_a_terminal(rocket, *args, until=b"foreground", keys=b"", background=True)
            assert seen.code == 254 and b"must run in its foreground" in seen.output, seen.output
    finally:
        rocket("stop", uuid)
    assert sorted(path.name for path in (rocket.data / "pods").glob("*/*")) == before


@pytest.mark.parametrize(
    "args",
    [
        ("--interactive", "--detach", "example.com/busybox"),
        ("--interactive", "example.com/busybox", "--name=a", "example.com/busybox", "--name=b"),
    ],
    ids=["detached", "two apps"],
)
def test_interactive_pods_run_one_app_in_the_foreground(rocket: Rocket, args: Tuple[str, ...]) -> None:
    before = sorted(path.name for path in (rocket.data / "pods").glob("*/*"))
    refused = rocket("run", *args, "--exec", "/bin/true", check=False)
    assert refused.returncode == 254 and "interactive" in refused.stderr, refused.stderr
    assert sorted(path.name for path in (rocket.data / "pods").glob("*/*")) == before  # nothing made


@pytest.mark.parametrize(
    ("flags", "seen"),
    [(["--interactive"], "through a pipe\n"), ([], "")],
    ids=["interactive: input that is not a terminal goes through", "otherwise the app reads /dev/null"],
)
def test_only_interactive_apps_read_the_operators_input(rocket: Rocket, flags: List[str], seen: str) -> None:
    result = subprocess.run(
        rocket.command("run", *flags, "example.com/busybox", "--exec", "/bin/cat"),
        env=rocket.env,
        input="through a pipe\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == seen, result


def test_volume_target_through_an_image_symlink_stays_in_the_root(rocket: Rocket, tmp_path: Path) -> None:
    # An image whose /data is a symlink to /etc and /up one to ../../..: mounts must land inside the root.
    source = tmp_path / "evil"
    (source / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, source / "rootfs" / "bin" / "busybox")
    os.symlink("busybox", source / "rootfs" / "bin" / "sh")
    os.symlink("/etc", source / "rootfs" / "data")
    os.symlink("../../../../../../../../tmp", source / "rootfs" / "up")
    (source / "manifest").write_text(json.dumps(image_manifest("example.com/evil")))
    build_image(source, tmp_path / "evil.aci")
    rocket("fetch", str(tmp_path / "evil.aci"))
    host = tmp_path / "host"
    host.mkdir()
    marker = f"rocket-escape-{os.getpid()}"
    rocket(
        "run", f"--volume=v,kind=host,source={host}",
        "example.com/evil", f"--mount=volume=v,target=/data/{marker}", "--exec", "/bin/sh", "--", "-c",
        f"echo inside > /data/{marker}/file",
    )  # fmt: skip
    assert not os.path.exists(f"/etc/{marker}") and (host / "file").read_text() == "inside\n"
    rocket(
        "run",
        "--volume=w,kind=empty",
        "example.com/evil",
        f"--mount=volume=w,target=/up/{marker}",
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        "true",
    )
    assert not os.path.exists(f"/tmp/{marker}")


def test_an_image_fetched_unverified_runs_only_with_the_flag_again(rocket: Rocket) -> None:
    command = rocket.command("run", "example.com/busybox", "--exec", "/bin/true", insecure=False)
    refused = subprocess.run(command, capture_output=True, text=True, env=rocket.env)
    assert (
        refused.returncode == 254 and "not verified" in refused.stderr and "--insecure-options=image" in refused.stderr
    )
    assert rocket("run", "example.com/busybox", "--exec", "/bin/true").returncode == 0


FAKE_SYSTEMD_RUN = """#!/bin/sh
# Stands in for systemd-run on a machine whose PID 1 is not systemd: starts the command after `--`
# detached, as a transient unit would, with INVOCATION_ID set as systemd sets it for units.
echo "$@" >> "$(dirname "$0")/calls"
while [ "$1" != "--" ]; do shift; done
shift
INVOCATION_ID=fake setsid "$@" < /dev/null >> "$(dirname "$0")/journal" 2>&1 &
"""


def test_detached_pods_under_systemd_take_the_lock_over(
    rocket: Rocket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemd-run").write_text(FAKE_SYSTEMD_RUN)
    (fake / "systemd-run").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("ROCKET_SUPERVISOR", "systemd")
    uuid = detach(rocket, "example.com/busybox", "--exec", "/bin/sh", "--", "-c", "echo to-the-journal; sleep 600")
    call = (fake / "calls").read_text()
    assert f"--unit=rocket-{uuid}" in call and "--property=Delegate=yes" in call and "--take-lock" in call
    assert rocket.status(uuid)["state"] == "running"
    assert not (rocket.data / "pods" / "run" / uuid / "handover").exists()
    rocket("stop", uuid)
    assert rocket.status(uuid)["state"] == "exited"
    assert "to-the-journal" in (fake / "journal").read_text()
    assert rocket("logs", uuid).stdout.strip() == "to-the-journal"


def test_a_unit_whose_journal_goes_away_keeps_its_pod(
    rocket: Rocket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journald restart breaks a unit's output stream: the echo ends, the pod and its log go on
    (only `rocket run` in the foreground stops its pod when nobody reads it any more)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    # The "journal" reads a few bytes and leaves, as a restarting journald drops the stream.
    (fake / "systemd-run").write_text(
        FAKE_SYSTEMD_RUN.replace(
            '>> "$(dirname "$0")/journal" 2>&1 &', '2>&1 | head -c 20 > "$(dirname "$0")/journal" &'
        )
    )
    (fake / "systemd-run").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("ROCKET_SUPERVISOR", "systemd")
    uuid = detach(
        rocket, "example.com/busybox", "--exec", "/bin/sh", "--", "-c", "while :; do echo tick; sleep 0.05; done"
    )
    deadline = time.monotonic() + 10
    while rocket("logs", uuid).stdout.count("tick") < 40 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rocket("logs", uuid).stdout.count("tick") >= 40  # long after the journal left
    assert len((fake / "journal").read_bytes()) == 20
    assert rocket.status(uuid)["state"] == "running"
    rocket("stop", uuid)
    assert rocket.status(uuid)["exit_code"] == 143


def test_images_of_existing_pods_are_kept(tmp_path: Path) -> None:
    own = Rocket(tmp_path / "data")
    own("fetch", str(busybox_image(tmp_path)))
    uuid_file = tmp_path / "uuid"
    own("prepare", "--uuid-file-save", str(uuid_file), "example.com/busybox", "--exec", "/bin/true")
    refused = own("image", "rm", "example.com/busybox", check=False)
    assert refused.returncode == 254 and "used by a pod" in refused.stderr
    own("image", "gc", "--grace-period=0s")
    assert "example.com/busybox" in own("image", "list").stdout
    own("rm", uuid_file.read_text().strip())
    own("image", "gc", "--grace-period=0s")
    assert "example.com/busybox" not in own("image", "list").stdout


def test_more_isolators_and_app_settings(rocket: Rocket, tmp_path: Path) -> None:
    manifest_image = busybox_image(
        tmp_path,
        "example.com/tuned",
        app={
            "exec": [
                "/bin/sh",
                "-c",
                "pwd; grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj; ls -d /cache",
            ],
            "user": "0",
            "group": "0",
            "workingDirectory": "/tmp",
            "isolators": [
                {"name": "os/linux/no-new-privileges", "value": True},
                {"name": "os/linux/oom-score-adj", "value": 500},
            ],
            "mountPoints": [{"name": "cache", "path": "/cache"}],  # no volume given: an implicit empty one
        },
    )
    rocket("fetch", str(manifest_image))
    out = rocket("run", "example.com/tuned").stdout.split()
    assert out[0] == "/tmp" and out[1:3] == ["NoNewPrivs:", "1"] and out[3] == "500" and out[4] == "/cache"


def test_seccomp_flag_and_pod_sysctl(rocket: Rocket, tmp_path: Path) -> None:
    blocked = rocket(
        "run", "example.com/busybox", "--seccomp=mode=remove,errno=EPERM,mkdir,mkdirat",
        "--exec", "/bin/sh", "--", "-c", "mkdir /tmp/x 2>&1 || echo BLOCKED",
    ).stdout  # fmt: skip
    assert "BLOCKED" in blocked
    host_path = Path("/proc/sys/net/ipv4/tcp_fin_timeout")
    host_value = host_path.read_text().strip()
    wanted = "17" if host_value != "17" else "23"
    pod = {
        "acKind": "PodManifest",
        "acVersion": "0.8.11",
        "apps": [
            {
                "name": "sysctl",
                "image": {"name": "example.com/busybox"},
                "app": {"exec": ["/bin/cat", "/proc/sys/net/ipv4/tcp_fin_timeout"], "user": "0", "group": "0"},
            }
        ],
        "isolators": [{"name": "os/unix/sysctl", "value": {"net.ipv4.tcp_fin_timeout": wanted}}],
    }
    path = tmp_path / "pod.json"
    path.write_text(json.dumps(pod))
    assert rocket("run", "--pod-manifest", str(path)).stdout.strip() == wanted
    assert host_path.read_text().strip() == host_value  # set in the pod's own network namespace only
