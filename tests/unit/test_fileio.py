"""fileio: a write replaces its target whole or not at all, and leaves no temporary file behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import List

import pytest

from rocket import fileio
from rocket.fileio import append_record, atomic_output, atomic_write


def leftovers(folder: Path) -> List[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_a_write_replaces_the_target_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with atomic_output(target, mode=0o600) as stream:
        stream.write(b"new")
        assert target.read_text() == "old"  # nothing shows before the block ends
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_an_error_in_the_block_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="half-way"), atomic_output(target) as stream:
        stream.write(b"partial")
        raise RuntimeError("half-way")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_failed_rename_removes_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a-folder"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        atomic_write(target, b"data")
    assert (target / "inside").read_text() == "kept"
    assert leftovers(tmp_path) == []


def test_durable_writes_fsync_the_file_and_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: List[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    atomic_write(tmp_path / "durable", b"x")
    assert len(synced) == 2  # the file, then the folder holding the new name
    synced.clear()
    atomic_write(tmp_path / "runtime", b"x", durable=False)
    assert synced == []


def test_a_log_record_is_one_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    append_record(log, b'{"a": 1}')
    append_record(log, b'{"b": 2}\n')
    assert log.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    with pytest.raises(AssertionError):
        append_record(log, b"two\nlines")
