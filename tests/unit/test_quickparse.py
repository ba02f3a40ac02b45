"""The fast path of `rocket run` and `rocket prepare` reads a plain command line exactly as argparse does,
and leaves everything else to argparse."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from rocket.cli import pod_prepare, pod_run
from rocket.cli.parser import build_parser
from rocket.cli.quickparse import quick_parse


def by_argparse(argv: List[str]) -> Dict[str, Any]:
    args, extra = build_parser(argv).parse_known_args(argv)
    assert extra == []
    return vars(args)


PLAIN = [
    ["run", "example.com/app"],
    ["run"],
    ["prepare", "example.com/app"],
    ["--dir", "/tmp/data", "run", "--net=none", "--insecure-options=image", "example.com/app", "--exec", "/bin/true"],
    ["--dir=/d", "--debug", "run", "--dir", "/e", "example.com/app"],  # the verb's own copy wins, as in argparse
    ["run", "--debug", "--max-image-size=1G", "--local-config", "/etc/x", "--system-config=/usr/x", "img"],
    ["run", "--detach", "--interactive", "--hostname", "h1", "--flavor=fly", "--restart", "on-failure", "img"],
    ["run", "--volume", "v1,kind=host,source=/a", "--volume=v2,kind=empty", "--port=http:8080", "img"],
    ["run", "--dns", "8.8.8.8", "--dns=host", "--dns-search", "a.test", "--dns-opt=ndots:2", "--dns-domain=", "img"],
    ["run", "--hosts-entry", "10.0.0.1=db", "--uuid-file-save=/tmp/u", "--stop-timeout", "2.5", "img"],
    ["run", "--pull-policy=never", "--pod-manifest", "/tmp/pod.json"],
    ["prepare", "--net", "default", "--max-image-entries=10", "img", "--set-env=A=1", "---", "img2", "--exec", "/x"],
    ["run", "img", "--detach", "--", "--not-a-flag", "-x", "---", "img2"],  # after the image: the app's words
    ["run", "--stop-timeout=1e3", "img"],
    ["--insecure-options", "run", "run", "img"],  # a value that is also a verb's name
]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_command_line_reads_as_argparse_reads_it(argv: List[str]) -> None:
    quick = quick_parse(argv)
    assert quick is not None
    assert vars(quick) == by_argparse(argv)


def test_the_verb_runs_its_own_function() -> None:
    assert quick_parse(["run", "img"]).run is pod_run.run  # type: ignore[union-attr]
    assert quick_parse(["prepare", "img"]).run is pod_prepare.run  # type: ignore[union-attr]


def test_lists_are_not_shared_between_reads() -> None:
    first = quick_parse(["run", "--volume=a", "img"])
    second = quick_parse(["run", "img"])
    assert first.volume == ["a"] and second.volume == []  # type: ignore[union-attr]


FOR_ARGPARSE = [
    [],
    ["--help"],
    ["run", "--help"],
    ["run", "-h", "img"],
    ["version"],
    ["image", "list"],
    ["status", "abc"],
    ["run", "--ins=image", "img"],  # an abbreviation: argparse's to accept
    ["run", "--netx=none", "img"],
    ["run", "--", "img"],
    ["run", "-d", "img"],
    ["run", "--hostname", "-x", "img"],  # a value that looks like an option
    ["run", "--stop-timeout", "-1", "img"],
    ["run", "--hostname"],  # no value
    ["run", "--detach=yes", "img"],
    ["run", "--flavor=kvm", "img"],  # not a choice
    ["run", "--stop-timeout=soon", "img"],  # not a number
    ["run", "--restart", "sometimes", "img"],
    ["frobnicate", "run"],
    ["img", "run"],  # no verb first
    ["--dir", "/d", "img"],
]


@pytest.mark.parametrize("argv", FOR_ARGPARSE, ids=lambda argv: " ".join(argv) or "(none)")
def test_anything_else_is_left_to_argparse(argv: List[str]) -> None:
    assert quick_parse(argv) is None


def test_argparse_still_decides_what_the_fast_path_leaves(capsys: pytest.CaptureFixture[str]) -> None:
    from rocket.cli.main import run

    with pytest.raises(SystemExit) as exited:
        run(["run", "--flavor=kvm", "img"])
    assert exited.value.code == 2
    assert "invalid choice: 'kvm'" in capsys.readouterr().err
    assert by_argparse(["run", "--ins=image", "img"])["insecure_options"] == "image"
