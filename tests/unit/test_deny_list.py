"""policy.edit_deny_list: the trust module's deny-list edits, decided without writing, then written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rocket.errors import TrustError
from rocket.policy import edit_deny_list, load_policy, write_policy

A = "a" * 40
B = "B" * 40
C = "c" * 64


@pytest.fixture
def folders(tmp_path: Path) -> dict:
    return {"local_config": tmp_path / "etc", "system_config": tmp_path / "usr", "state_dir": tmp_path / "var"}


def test_without_a_policy_the_edit_keeps_rkt_behaviour(folders: dict) -> None:
    edit = edit_deny_list(add=[A], **folders)
    assert edit is not None and edit.before == frozenset() and edit.after == {A}
    assert json.loads(edit.data) == {"version": 1, "default": {"type": "signedBy"}, "deny": [A]}
    assert not edit.path.exists()  # deciding writes nothing
    write_policy(edit)
    policy = load_policy(**folders)
    assert policy.deny == {A} and policy.default.type == "signedBy" and policy.version == 1


def test_only_deny_and_version_change(folders: dict) -> None:
    system = folders["system_config"]
    system.mkdir()
    document = {"version": 5, "default": {"type": "reject"}, "scopes": {"example.com": {"type": "signedBy"}}}
    (system / "policy.json").write_text(json.dumps(document))
    edit = edit_deny_list(add=[B, A], **folders)
    assert edit is not None and edit.path == folders["local_config"] / "policy.json"
    assert json.loads(edit.data) == {**document, "version": 6, "deny": [A, B.lower()]}


def test_version_rises_past_the_highest_loaded(folders: dict) -> None:
    (folders["state_dir"] / "trust").mkdir(parents=True)
    (folders["state_dir"] / "trust" / "policy-version").write_text("7\n")
    edit = edit_deny_list(add=[A], **folders)
    assert edit is not None and json.loads(edit.data)["version"] == 8


def test_no_change_is_none(folders: dict) -> None:
    edit = edit_deny_list(add=[A, C], **folders)
    assert edit is not None
    write_policy(edit)
    assert edit_deny_list(add=[A.upper()], **folders) is None
    assert edit_deny_list(remove=[B], **folders) is None
    assert edit_deny_list(exact=[C, A], **folders) is None


def test_remove_and_exact(folders: dict) -> None:
    write_policy(edit_deny_list(add=[A, C], **folders))  # type: ignore[arg-type]
    removed = edit_deny_list(remove=[A], **folders)
    assert removed is not None and removed.after == {C}
    emptied = edit_deny_list(exact=[], **folders)
    assert emptied is not None and "deny" not in json.loads(emptied.data)


def test_a_bad_fingerprint_is_refused(folders: dict) -> None:
    with pytest.raises(TrustError) as caught:
        edit_deny_list(add=["not-a-fingerprint"], **folders)
    assert caught.value.context["field"] == "deny"
