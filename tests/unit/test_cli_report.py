"""How the command line reports an engine error: the message, the hint, the root cause once."""

from __future__ import annotations

import errno

import pytest

from rocket.cli.main import _report, system_error
from rocket.errors import UsageError


def raised(message: str, cause: Exception) -> UsageError:
    try:
        try:
            raise cause
        except Exception as inner:
            raise UsageError(message, hint="check the flags") from inner
    except UsageError as exc:
        return exc


def test_the_root_cause_follows_the_message_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    _report(raised("cannot read the pod manifest", OSError(2, "No such file or directory")), debug=False)
    assert capsys.readouterr().err.splitlines() == [
        "rocket: cannot read the pod manifest",
        "rocket: hint: check the flags",
        "rocket: cause: [Errno 2] No such file or directory",
    ]


def test_a_cause_the_message_already_quotes_is_not_repeated(capsys: pytest.CaptureFixture[str]) -> None:
    detail = 'limit must be a quantity such as 500m, not "abc"'
    _report(raised(f"the flags make an invalid pod: {detail}", ValueError(detail)), debug=False)
    assert capsys.readouterr().err.splitlines() == [
        f"rocket: the flags make an invalid pod: {detail}",
        "rocket: hint: check the flags",
    ]


def test_a_system_error_names_the_paths_and_the_reason() -> None:
    error = system_error(OSError(errno.EXDEV, "Invalid cross-device link", "/a/x", None, "/b/x"))
    assert error.message == "/a/x: /b/x: Invalid cross-device link" and error.hint == ""
    assert system_error(OSError(errno.EIO, "Input/output error")).message == "[Errno 5] Input/output error"


def test_a_full_disk_gets_a_hint() -> None:
    error = system_error(OSError(errno.ENOSPC, "No space left on device", "/var/lib/rocket/cas/x"))
    assert error.message == "/var/lib/rocket/cas/x: No space left on device"
    assert "rocket gc" in error.hint
