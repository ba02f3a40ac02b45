"""How the command line reports an engine error: the message, the hint, the root cause once."""

from __future__ import annotations

import pytest

from rocket.cli.main import _report
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
