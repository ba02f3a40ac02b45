"""The per-app part of `rocket run` and `rocket prepare`: IMAGE [APP FLAGS] [-- ARGS [---]] …, as in rkt."""

from __future__ import annotations

import pytest

from rocket.errors import UsageError
from rocket.podspec import parse_app_section


def test_apps_follow_one_another_with_their_flags_and_arguments() -> None:
    apps = parse_app_section(
        ["a.test/one", "--name", "one", "--", "-x", "--not-a-flag", "---", "a.test/two", "--exec=/bin/two", "a.test/3"]
    )
    assert [app.image for app in apps] == ["a.test/one", "a.test/two", "a.test/3"]
    assert apps[0].args == ["-x", "--not-a-flag"] and apps[0].one("name") == "one"
    assert apps[1].one("exec") == "/bin/two" and apps[2].args is None  # None: the image's own


def test_a_separator_without_arguments_says_how_apps_follow() -> None:
    with pytest.raises(UsageError) as caught:
        parse_app_section(["a.test/one", "--exec", "/bin/true", "---", "a.test/two"])
    assert "'---'" in caught.value.message and "IMAGE" in caught.value.hint


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["--", "x"], "before any image"),
        (["--exec", "/x"], "must follow an image"),
        (["a.test/one", "--bogus"], "unknown per-app flag --bogus"),
        (["a.test/one", "--exec"], "--exec needs a value"),
        ([], "no image"),
    ],
)
def test_malformed_app_sections_are_refused(words: list, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_app_section(words)
    assert says in caught.value.message
