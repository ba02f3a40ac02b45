"""What keeps `rocket run` fast (bench/start.py): the modules its start path imports, and its small helpers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rocket.cgroups import PodCgroup, detect
from rocket.limits import ImportLimits
from rocket.pod import new_uuid
from rocket.stage1.launch import Identity

ENGINE_PARENT = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"

# Each costs 1-15 ms at every pod start and is needed only off that path (dataclasses with inspect;
# shutil with bz2 and lzma). socket, selectors and threading are loaded by the supervisor once the
# pod's init is forked, overlapping the kernel's wait for the cgroup move.
# ipaddress is not among them: pathlib imports it (through urllib.parse).
STAY_OFF = (
    "typing",  # annotations only: the modules on the path import it under TYPE_CHECKING
    "dataclasses",
    "inspect",
    "shutil",
    "tempfile",
    "subprocess",
    "uuid",
    "platform",
    "hashlib",
    "fractions",
    "socket",
    "selectors",
    "threading",
    "copy",
    "argparse",  # a plain `rocket run` command line is read by cli/quickparse.py
    "gettext",
    "locale",
    "contextlib",  # ~1 ms: the modules on the path write try/except/pass, fileio.atomic_output is a class
    "base64",
    "sqlite3",  # the index uses its C module, _sqlite3: sqlite3.dbapi2 imports datetime (~2 ms)
    "datetime",
)

# The metadata service loads in every supervisor while the pod's apps start: its CPU is theirs.
# http.server with socketserver, email and ssl cost ~35 ms; hmac and hashlib load on the first request.
METADATA_STAYS_OFF = ("http.server", "socketserver", "email", "ssl", "hmac", "hashlib", "secrets", "random")

# What `rocket run IMAGE` imports before its pod's apps start: the command line read by the fast path,
# prepare, the supervisor, the plan, init, the cgroups, the app launcher and its confinement.
START_PATH = """
import re, sys
compiled_by_rocket = []
plain_compile = re.compile


def recording_compile(pattern, flags=0):
    caller = sys._getframe(1).f_globals.get("__name__", "")
    if caller.startswith("rocket"):
        compiled_by_rocket.append(f"{caller}: {pattern}")
    return plain_compile(pattern, flags)


re.compile = recording_compile
sys.path.insert(0, sys.argv[1])
from rocket.cli.main import quick_parse
assert quick_parse(["run", "--net=none", "example.com/app"]) is not None
import rocket.cli.pod_run, rocket.lifecycle, rocket.stage1.boot, rocket.cgroups, rocket.net.config
import rocket.stage1.caps, rocket.stage1.seccomp, rocket.metadata_token
print(" ".join(sorted(sys.modules)))
print("\\n".join(compiled_by_rocket), file=sys.stderr)
"""


def run_probe(code: str, *, check: bool = True) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    """Run `code` in a fresh `python3 -I -S`, as the host launcher does, with the engine as argv[1]."""
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(ENGINE_PARENT)], capture_output=True, text=True, check=check
    )


def test_the_start_path_leaves_the_heavy_modules_alone() -> None:
    imported = set(run_probe(START_PATH).stdout.split())
    assert "rocket.stage1.supervisor" in imported  # the probe ran the whole path
    assert sorted(name for name in STAY_OFF if name in imported) == []


def test_the_metadata_service_leaves_the_heavy_modules_alone() -> None:
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import rocket.metadata; print(' '.join(sys.modules))"
    imported = set(run_probe(probe).stdout.split())
    assert "rocket.metadata_http" in imported
    assert sorted(name for name in METADATA_STAYS_OFF if name in imported) == []


def test_importing_the_start_path_compiles_no_pattern() -> None:
    done = run_probe(START_PATH)
    assert "rocket.manifest" in done.stdout.split()
    assert done.stderr.strip() == ""  # each is compiled when first used (rocket/patterns.py)


def test_a_lazy_pattern_acts_as_the_compiled_one() -> None:
    from rocket.patterns import LazyPattern

    lazy = LazyPattern(r"(\d+)([a-z]?)", re.IGNORECASE)
    plain = re.compile(r"(\d+)([a-z]?)", re.IGNORECASE)
    for text in ("12", "12K", "x12", "12kk", ""):
        for method in ("fullmatch", "match", "search", "findall"):
            got, want = getattr(lazy, method)(text), getattr(plain, method)(text)
            assert (got.groups() if isinstance(got, re.Match) else got) == (
                want.groups() if isinstance(want, re.Match) else want
            ), (method, text)
    assert lazy.sub(lambda match: match.group(1), "a12b 7") == plain.sub(lambda match: match.group(1), "a12b 7")


def test_new_uuid_is_a_random_version_4_uuid() -> None:
    import uuid

    made = {new_uuid() for _attempt in range(1000)}
    assert len(made) == 1000
    for text in made:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", text)
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../etc",
        "1C7A9E5E-4B2D-4F7E-9A0B-5D6C7E8F9A0B",
        "1c7a9e5e4b2d4f7e9a0b5d6c7e8f9a0b",
        "1c7a9e5e-4b2d-4f7e-9a0b-5d6c7e8f9a0b/x",
        "1c7a9e5e-4b2d-4f7e-9a0b-5d6c7e8f9a0b\n",
        "1c7a9e5e-4b2d-4f7e-9a0b-5d6c7e8f9a0",
        "1c7a9e5e-4b2d-4f7e-9a0b-5d6c7e8f9a0bb",
        "1c7a9e5e-4b2d-4f7e-9a0b--5d6c7e8f9a0b",
        "1c7a9e5g-4b2d-4f7e-9a0b-5d6c7e8f9a0b",
        "1c7a9e5e-4b2d-4f7e-9a0b-5d6c7e8f9a0b-",
    ],
)
def test_a_pod_cgroup_takes_only_a_canonical_uuid(bad: str) -> None:
    with pytest.raises(AssertionError, match="non-UUID"):
        PodCgroup(detect(), bad)
    good = "1c7a9e5e-4b2d-4f7e-9a0b-5d6c7e8f9a0b"
    assert PodCgroup(detect(), good).pod_uuid == good


def test_records_compare_and_hash_by_their_fields() -> None:
    assert ImportLimits(1, 2) == ImportLimits(max_size=1, max_entries=2)
    assert ImportLimits(1, 2) != ImportLimits(1, 3)
    assert len({ImportLimits(1, 2), ImportLimits(1, 2)}) == 1
    assert repr(ImportLimits(1, 2)) == "ImportLimits(max_size=1, max_entries=2)"
    assert Identity(0, 0, [1]) == Identity(0, 0, [1]) and Identity(0, 0) != Identity(1, 0)
    with pytest.raises(TypeError, match="unhashable"):
        hash(Identity())
    assert Identity().groups is not Identity().groups  # a fresh list each, as default_factory gave


COLLECTOR_PROBE = """
import gc, os, sys
sys.path.insert(0, sys.argv[1])


def no_exit(code):
    raise SystemExit(code)


os._exit = no_exit  # cli.main.main ends with os._exit: carry on with the next command instead
from rocket.cli import pod_run, version
seen = []


def record(args, ctx):
    seen.append(gc.isenabled())
    return 0


pod_run.run = version.run = record
from rocket.cli import entry
for argv in (["version"], ["run", "example.com/app"]):
    sys.argv = ["rocket", *argv]
    gc.enable()
    try:
        entry.main()
    except SystemExit:
        pass
    print(argv[0], seen.pop())
"""


def test_the_collector_is_off_while_a_command_starts_and_on_for_its_work() -> None:
    """Off through the imports (cli/entry.py); back on for the verb, except a pod start's, whose
    supervisor turns it on before forking init (collect_from_now_on)."""
    import rocket.cli.main as cli_main

    done = run_probe(COLLECTOR_PROBE, check=False)  # the assertion below shows its output
    assert cli_main.POD_STARTS == ("run", "run-prepared")
    assert done.stdout.split("\n")[:2] == ["version True", "run False"], done.stdout + done.stderr


def test_collect_from_now_on_freezes_the_heap_and_turns_the_collector_on() -> None:
    import gc

    from rocket.stage1.supervisor import collect_from_now_on

    gc.disable()
    try:
        collect_from_now_on()
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.enable()


def test_the_metadata_service_loads_only_once_a_client_connects() -> None:
    """A pod that never asks for its metadata never loads the service (stage1/supervisor.py)."""
    import socket
    import threading

    from rocket.stage1.supervisor import listen_on, wait_for_a_client

    listener = listen_on("127.0.0.1", 0)
    port = listener.getsockname()[1]
    connected = threading.Event()
    waiter = threading.Thread(target=lambda: (wait_for_a_client(listener), connected.set()), daemon=True)
    waiter.start()
    try:
        assert not connected.wait(0.3)  # nobody has connected: still waiting
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert connected.wait(5)
            # The connection waits in the backlog, unaccepted, for the service to take it.
            accepted, _address = socket.socket(fileno=listener.detach()).accept()
            accepted.sendall(b"x")
            assert client.recv(1) == b"x"
            accepted.close()
    finally:
        waiter.join(5)


def test_the_checkouts_editable_install_adds_no_import_hook() -> None:
    """pyproject.toml maps the whole plugins/module_utils folder, so `pip install -e .` (scripts/setup.sh)
    writes a plain path into a .pth file. With the `rocket` folder mapped alone, setuptools installed an
    import hook instead, which every start of that venv's Python (the console script) loaded: ~5-15 ms."""
    probe = "import sys, rocket; print(rocket.__file__); print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    origin, modules = done.stdout.split("\n")[:2]
    assert Path(origin).resolve() == ENGINE_PARENT / "rocket" / "__init__.py"
    assert [name for name in modules.split() if "editable" in name] == []
