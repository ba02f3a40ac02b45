"""Pod states: folders, transitions, locks and UUID look-ups (no root needed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rocket.errors import NotFoundError, PodStateError, StoreError, UsageError
from rocket.pod import EXITED_GARBAGE, GARBAGE, PREPARE, PREPARED, RUN, Pod


def test_the_happy_path_is_a_series_of_renames(tmp_path: Path) -> None:
    pod = Pod.create(tmp_path)
    folder_inode = os.stat(pod.path).st_ino
    for move, state in ((pod.to_preparing, PREPARE), (pod.to_prepared, PREPARED), (pod.to_run, RUN)):
        move()
        assert pod.state == state and pod.path.parent.name == state
    assert os.stat(pod.path).st_ino == folder_inode  # the same folder, moved
    pod.unlock()
    assert pod.display_state() == "exited"  # in run/ but nobody holds the lock
    pod.lock()
    pod.to_exited_garbage()
    pod.to_garbage()
    pod.delete()
    assert Pod.all(tmp_path) == []


@pytest.mark.parametrize(
    "path",
    [["to_prepared"], ["to_run"], ["to_preparing", "to_run"], ["to_preparing", "to_prepared", "to_exited_garbage"]],
)
def test_other_moves_are_refused_naming_both_ends(tmp_path: Path, path: list) -> None:
    pod = Pod.create(tmp_path)
    *allowed, refused = path
    for move in allowed:
        getattr(pod, move)()
    before = pod.state
    with pytest.raises(PodStateError) as caught:
        getattr(pod, refused)()
    assert caught.value.context["state"] == before and caught.value.context["to"]
    assert pod.state == before and pod.path.is_dir()


def test_the_lock_is_held_by_a_process_and_dropped_with_it(tmp_path: Path) -> None:
    pod = Pod.create(tmp_path)
    pod.to_preparing()
    pod.to_prepared()
    pod.to_run()
    pod.unlock()
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # a stand-in supervisor: holds the lock, then dies without a word
        Pod(tmp_path, pod.uuid, RUN).lock()
        os.write(ready_write, b"x")
        time.sleep(30)
        os._exit(0)
    os.read(ready_read, 1)
    assert pod.is_running() and pod.display_state() == "running"
    with pytest.raises(PodStateError):
        pod.lock()
    os.kill(child, 9)
    os.waitpid(child, 0)
    assert not pod.is_running() and pod.display_state() == "exited"


def test_uuid_prefixes(tmp_path: Path) -> None:
    first, second = Pod.create(tmp_path), Pod.create(tmp_path)
    first.unlock()
    second.unlock()
    assert Pod.find(tmp_path, first.uuid[:8]).uuid == first.uuid
    assert Pod.find(tmp_path, second.uuid.upper()).uuid == second.uuid
    with pytest.raises(UsageError):
        Pod.find(tmp_path, "ab")
    with pytest.raises(NotFoundError):
        Pod.find(tmp_path, "ffffffff-0000")
    for name in ("abcd1111-0000-4000-8000-000000000000", "abcd2222-0000-4000-8000-000000000000"):
        (tmp_path / "pods" / PREPARED / name).mkdir()
    with pytest.raises(StoreError) as caught:
        Pod.find(tmp_path, "abcd")
    assert "ambiguous" in caught.value.message
    assert Pod.find(tmp_path, "abcd2").uuid.startswith("abcd2222")


def test_garbage_and_exited_garbage_states_exist(tmp_path: Path) -> None:
    Pod.create(tmp_path).unlock()
    assert {p.name for p in (tmp_path / "pods").iterdir()} >= {EXITED_GARBAGE, GARBAGE, PREPARED}
