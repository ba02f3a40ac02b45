"""The store under real processes: concurrent imports, `kill -9` mid-import, crash leftovers, export and verify.

Every process here is a real one. Workers that must start at the same moment each announce themselves
with a `ready-<n>` file once their imports are done, then wait for one `go` file, so that interpreter
start-up does not serialise them. Big archives are written in 1 MiB blocks of random bytes repeated,
hashed as they are written, which takes a fraction of a second even for 300 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

import rocket.store
from archives import (
    VALID_MANIFEST,
    compress,
    device,
    directory,
    end_marker,
    gnu_long_name,
    hardlink,
    header,
    make_aci,
    manifest_for,
    padding,
    pax,
    regular,
    symlink,
)
from rocket.errors import StoreError
from rocket.store import Store

MODULE_UTILS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"
MiB = 1 << 20
TIMEOUT = 60

# A worker: announce readiness, wait for the go file, then import through the CLI or the Store API.
WORKER = r"""
import json, os, sys, time
go, ready, mode, data_dir, archive = sys.argv[1:6]
from rocket.cli.main import run
from rocket.store import Store
open(ready, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("worker: no go signal")
    time.sleep(0.001)
if mode == "cli":
    sys.exit(run(["--dir", data_dir, "fetch", "--full", "--insecure-options=image", archive]))
store = Store(data_dir)
result = store.import_archive(archive)
print(json.dumps({"id": result.record.id, "already_present": result.already_present}))
store.close()
"""


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(MODULE_UTILS))


def rocket_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-m", "rocket", "--dir", str(data_dir), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def start_fetch(archive: Path, *, data_dir: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rocket",
            "--dir",
            str(data_dir),
            "fetch",
            "--full",
            "--insecure-options=image",
            str(archive),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_together(jobs: Sequence[tuple], *, sync_dir: Path) -> List[subprocess.CompletedProcess]:  # type: ignore[type-arg]
    """Run (mode, data_dir, archive) workers so that their imports start at the same moment."""
    sync_dir.mkdir()
    go = sync_dir / "go"
    procs = []
    for number, (mode, data_dir, archive) in enumerate(jobs):
        ready = sync_dir / f"ready-{number}"
        argv = [sys.executable, "-c", WORKER, str(go), str(ready), mode, str(data_dir), str(archive)]
        procs.append(subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + TIMEOUT
        while not all((sync_dir / f"ready-{n}").exists() for n in range(len(jobs))):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(proc.poll() is None for proc in procs), "a worker died before the start"
            time.sleep(0.005)
        go.touch()
        done = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
        return done
    finally:
        for proc in procs:  # only reached with live workers when the test already failed
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def write_big_aci(path: Path, size: int, *, manifest: bytes = VALID_MANIFEST, seed: bytes = b"") -> str:
    """An ACI holding one `size`-byte file of repeated random blocks; returns its image ID."""
    digest = hashlib.sha512()
    block = hashlib.sha512(seed).digest() + os.urandom(MiB - 64)
    with open(path, "wb") as out:

        def emit(data: bytes) -> None:
            digest.update(data)
            out.write(data)

        emit(regular("manifest", manifest) + directory("rootfs") + header("rootfs/big", size=size, mode=0o600))
        left = size
        while left:
            step = min(left, len(block))
            emit(block[:step])
            left -= step
        emit(padding(size) + end_marker())
    return "sha512-" + digest.hexdigest()


def image_id_of(uncompressed: bytes) -> str:
    return "sha512-" + hashlib.sha512(uncompressed).hexdigest()


def listed_ids(data_dir: Path) -> List[str]:
    done = rocket_cli("image", "list", "--format=json", data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return [image["id"] for image in json.loads(done.stdout)]


def index_rows(data_dir: Path) -> List[str]:
    """The index read directly, without opening the store (which would repair things first)."""
    with sqlite3.connect(str(data_dir / "cas" / "index.db")) as db:
        return [row[0] for row in db.execute("SELECT id FROM images")]


def tmp_listing(data_dir: Path) -> List[str]:
    return sorted(os.listdir(data_dir / "cas" / "tmp"))


def images_listing(data_dir: Path) -> List[str]:
    return sorted(os.listdir(data_dir / "cas" / "images"))


def wait_for_work_in_progress(data_dir: Path, proc: subprocess.Popen, *, timeout: float = TIMEOUT) -> Path:  # type: ignore[type-arg]
    """Wait until an import has written file data into its work folder; return that folder."""
    tmp = data_dir / "cas" / "tmp"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the import finished before it could be interrupted"
        try:
            for work in tmp.iterdir():
                big = work / "rootfs" / "big"
                if work.is_dir() and big.exists() and big.stat().st_size > 0:
                    return work
        except FileNotFoundError:
            pass  # the folder or file moved while we looked
        time.sleep(0.002)
    raise AssertionError("no import work appeared under cas/tmp")


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A ~300 MB image, shared by the tests that interrupt or watch a long import."""
    path = tmp_path_factory.mktemp("big") / "big.aci"
    return path, write_big_aci(path, 300 * MiB, seed=b"big")


# -- (a) the same image imported by two processes at the same moment --------------------------------


def test_two_processes_import_the_same_image_at_once(tmp_path: Path) -> None:
    archive = tmp_path / "same.aci"
    image_id = write_big_aci(archive, 50 * MiB, seed=b"same")
    data_dir = tmp_path / "store"
    done = run_together([("api", data_dir, archive), ("api", data_dir, archive)], sync_dir=tmp_path / "sync")
    for proc in done:
        assert proc.returncode == 0, proc.stderr
    results = [json.loads(proc.stdout) for proc in done]
    assert [result["id"] for result in results] == [image_id, image_id]
    assert sorted(result["already_present"] for result in results) == [False, True]
    assert index_rows(data_dir) == [image_id]
    assert images_listing(data_dir) == [image_id]
    assert tmp_listing(data_dir) == []
    verified = rocket_cli("image", "verify", data_dir=data_dir)
    assert verified.returncode == 0, verified.stderr


# -- (b) kill -9 in the middle of an import -----------------------------------------------------------


def test_kill_9_mid_import_leaves_nothing_visible_and_next_command_cleans_up(
    tmp_path: Path, big_archive: tuple
) -> None:
    archive, image_id = big_archive
    data_dir = tmp_path / "store"
    proc = start_fetch(archive, data_dir=data_dir)
    try:
        work = wait_for_work_in_progress(data_dir, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL

    # The crash left its work behind, and nothing else.
    assert tmp_listing(data_dir) == sorted([work.name, work.name + ".lock"])
    assert images_listing(data_dir) == []
    assert index_rows(data_dir) == []

    # The next command shows no image and removes the leftovers (their lock died with the process).
    assert listed_ids(data_dir) == []
    assert tmp_listing(data_dir) == []
    assert images_listing(data_dir) == []

    again = rocket_cli("fetch", "--full", "--insecure-options=image", str(archive), data_dir=data_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == image_id
    verified = rocket_cli("image", "verify", data_dir=data_dir)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == f"ok {image_id}"
    assert listed_ids(data_dir) == [image_id]


def test_command_during_a_live_import_leaves_its_work_alone(tmp_path: Path, big_archive: tuple) -> None:
    """Crash recovery must tell a dead import from a running one: only the lock says which."""
    archive, image_id = big_archive
    data_dir = tmp_path / "store"
    proc = start_fetch(archive, data_dir=data_dir)
    try:
        work = wait_for_work_in_progress(data_dir, proc)
        assert listed_ids(data_dir) == []  # runs recovery while the import is still writing
        still_running = proc.poll() is None
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.strip() == image_id
    if still_running:
        assert not work.exists()  # renamed into place by the import itself
    assert listed_ids(data_dir) == [image_id]
    assert tmp_listing(data_dir) == []
    assert rocket_cli("image", "verify", data_dir=data_dir).returncode == 0


# -- (c) an image folder without an index row ---------------------------------------------------------


def _small_archive(tmp_path: Path, name: str = "example.com/small", content: bytes = b"small\n") -> Path:
    path = tmp_path / f"{name.replace('/', '_')}.aci"
    path.write_bytes(make_aci([regular("rootfs/file", content)], manifest=manifest_for(name)))
    return path


def test_image_folder_without_row_is_removed_on_open(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    store = Store(data_dir)
    kept = store.import_archive(_small_archive(tmp_path)).record.id
    store.close()

    # What a crash between the rename and the index insert leaves: a complete folder, no row.
    orphan_id = "sha512-" + hashlib.sha512(b"never indexed").hexdigest()
    orphan = data_dir / "cas" / "images" / orphan_id
    (orphan / "rootfs" / "etc").mkdir(parents=True)
    (orphan / "manifest").write_bytes(VALID_MANIFEST)
    (orphan / "rootfs" / "etc" / "file").write_bytes(b"x")
    (orphan / "skeleton").write_bytes(b"")
    os.chmod(orphan / "rootfs" / "etc", 0o555)  # read-only folders inside must not stop the cleanup
    os.chmod(orphan / "rootfs", 0o555)
    assert sorted(images_listing(data_dir)) == sorted([kept, orphan_id])

    store = Store(data_dir)
    try:
        assert images_listing(data_dir) == [kept]
        assert tmp_listing(data_dir) == []
        assert [record.id for record in store.images()] == [kept]
        store.verify(kept)
    finally:
        store.close()


def test_imported_folder_whose_row_was_lost_is_removed_and_can_be_imported_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    archive = _small_archive(tmp_path)
    store = Store(data_dir)
    image_id = store.import_archive(archive).record.id
    store.close()
    with sqlite3.connect(str(data_dir / "cas" / "index.db")) as db:
        db.execute("DELETE FROM images WHERE id = ?", (image_id,))
    assert images_listing(data_dir) == [image_id]

    assert listed_ids(data_dir) == []  # opening the store removed the orphan folder
    assert images_listing(data_dir) == []
    assert tmp_listing(data_dir) == []

    store = Store(data_dir)
    try:
        result = store.import_archive(archive)
        assert (result.record.id, result.already_present) == (image_id, False)
        store.verify(image_id)
    finally:
        store.close()


def test_two_commands_recovering_the_same_orphan_both_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving is forced: another command runs its whole recovery just before this one locks the orphan.

    With real processes only, 8 commands opening a store with 200 orphan folders at the same moment hit it
    in 7 of 8 processes per round; forcing the order makes the test deterministic.
    """
    data_dir = tmp_path / "store"
    Store(data_dir).close()
    orphan_id = "sha512-" + hashlib.sha512(b"orphan").hexdigest()
    (data_dir / "cas" / "images" / orphan_id / "rootfs").mkdir(parents=True)
    orphan_lock = data_dir / "locks" / f"image-{orphan_id}.lock"
    other: List[subprocess.CompletedProcess] = []  # type: ignore[type-arg]

    class LockAfterAnotherCommand(rocket.store.FileLock):
        def acquire(self, *, blocking: bool = True, timeout: Optional[float] = None) -> bool:
            if self.path == orphan_lock and not other:
                other.append(rocket_cli("image", "list", "--format=json", data_dir=data_dir))
            return super().acquire(blocking=blocking, timeout=timeout)

    monkeypatch.setattr(rocket.store, "FileLock", LockAfterAnotherCommand)
    try:
        store = Store(data_dir)
    finally:
        monkeypatch.undo()
    store.close()
    assert len(other) == 1
    assert other[0].returncode == 0, other[0].stderr
    assert images_listing(data_dir) == []
    assert tmp_listing(data_dir) == []


# -- (d) export gives back the imported bytes; verify notices a changed byte --------------------------


def _rich_archive() -> bytes:
    return make_aci(
        [
            directory("rootfs/etc", mode=0o755, mtime=1_600_000_000),
            regular("rootfs/etc/hostname", b"box\n", uid=1000, gid=1000),
            regular("rootfs/etc/empty", b""),
            regular("rootfs/bin/tool", os.urandom(70_000), mode=0o4755),
            hardlink("rootfs/bin/tool-again", "rootfs/bin/tool"),
            symlink("rootfs/bin/sh", "/bin/busybox"),
            pax({"path": "rootfs/usr/share/" + "long-name-" * 20, "mtime": "1600000000.5"})
            + regular("rootfs/usr/share/placeholder", b"pax named\n"),
            gnu_long_name("rootfs/usr/lib/" + "gnu-long-" * 20) + regular("rootfs/usr/lib/placeholder", b"gnu named\n"),
            device("rootfs/dev/null"),
        ]
    )


@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "xz"])
def test_export_reproduces_the_image_id_and_verify_catches_a_changed_byte(tmp_path: Path, compression: str) -> None:
    plain = _rich_archive()
    image_id = image_id_of(plain)
    archive = tmp_path / "image.aci"
    archive.write_bytes(compress(plain, compression))
    data_dir = tmp_path / "store"

    store = Store(data_dir)
    try:
        result = store.import_archive(archive)
        assert result.compression == compression
        assert result.record.id == image_id
    finally:
        store.close()

    exported = tmp_path / "exported.aci"
    done = rocket_cli("image", "export", image_id, str(exported), data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert image_id_of(exported.read_bytes()) == image_id
    assert exported.read_bytes() == plain

    victim = data_dir / "cas" / "images" / image_id / "rootfs" / "bin" / "tool"
    with open(victim, "r+b") as stored:
        stored.seek(12_345)
        byte = stored.read(1)
        stored.seek(12_345)
        stored.write(bytes([byte[0] ^ 0xFF]))

    store = Store(data_dir)
    try:
        with pytest.raises(StoreError) as info:
            store.verify(image_id)
        assert type(info.value) is StoreError
    finally:
        store.close()
    failed = rocket_cli("image", "verify", data_dir=data_dir)
    assert failed.returncode == 254
    assert "Traceback" not in failed.stderr
    assert image_id in failed.stderr.splitlines()[0]
    refused = rocket_cli("image", "export", image_id, str(tmp_path / "again.aci"), data_dir=data_dir)
    assert refused.returncode == 254
    assert not (tmp_path / "again.aci").exists()


# -- (e) many different images at once ----------------------------------------------------------------


def test_eight_concurrent_imports_of_different_images_all_land(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"  # not created yet: the workers also race to create the store
    archives_dir = tmp_path / "archives"
    archives_dir.mkdir()
    expected: Dict[str, Path] = {}
    for number in range(8):
        path = archives_dir / f"image-{number}.aci"
        image_id = write_big_aci(
            path, 4 * MiB, manifest=manifest_for(f"example.com/app{number}", version=f"1.{number}"), seed=b"%d" % number
        )
        expected[image_id] = path
    done = run_together([("cli", data_dir, path) for path in expected.values()], sync_dir=tmp_path / "sync")
    for proc, image_id in zip(done, expected):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == image_id
        assert "Traceback" not in proc.stderr
    assert sorted(listed_ids(data_dir)) == sorted(expected)
    assert images_listing(data_dir) == sorted(expected)
    assert tmp_listing(data_dir) == []
    verified = rocket_cli("image", "verify", data_dir=data_dir)
    assert verified.returncode == 0, verified.stderr
    assert len(verified.stdout.splitlines()) == 8
