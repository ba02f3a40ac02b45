"""The argparse parser of the whole command line: every verb, its flags and its help.

`rocket run` and `rocket prepare` with a plain command line skip it (cli/quickparse.py); everything else,
help and syntax errors included, comes here. Only the parser of the verb asked for is built.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .flagspec import GLOBAL_FLAGS, SWITCH, add_flags

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional


# Verb name -> the module that defines it (one file per verb); a command imports only its own.
TOP_LEVEL_VERBS = {
    "fetch": "fetch",
    "trust": "trust",
    "prepare": "pod_prepare",
    "run": "pod_run",
    "run-prepared": "pod_run_prepared",
    "list": "pod_list",
    "status": "pod_status",
    "stop": "pod_stop",
    "rm": "pod_rm",
    "gc": "pod_gc",
    "cat-manifest": "pod_cat_manifest",
    "logs": "pod_logs",
    "enter": "pod_enter",
    "export": "pod_export",
    "version": "version",
    "config": "config",
    "boot": "boot",
}
IMAGE_VERBS = {
    "list": "image_list",
    "rm": "image_rm",
    "gc": "image_gc",
    "export": "image_export",
    "extract": "image_extract",
    "render": "image_extract",
    "cat-manifest": "image_cat_manifest",
    "verify": "image_verify",
    "build": "image_build",
    "validate": "image_validate",
    "audit": "image_audit",
}


def _register(table: Dict[str, str], subparsers: Any, wanted: Optional[str]) -> None:
    """Register the verbs of `table` in their listed order; only `wanted`'s module is imported if given."""
    modules = [table[wanted]] if wanted is not None else list(dict.fromkeys(table.values()))
    for name in modules:
        importlib.import_module(f"{__package__}.{name}").register(_OnlyVerbs(subparsers, wanted))


def _add_global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global flags, accepted before or after the verb (as rkt's are): after it, only if given."""
    add_flags(parser, GLOBAL_FLAGS, suppress_defaults=not top)


class _Discard:
    """Stands in for the parser of a verb that was not asked for: building all 30 costs ~35 ms."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_defaults(self, **kwargs: Any) -> None:
        pass

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _Discard:
        return self


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own, sized without shutil: argparse makes one for every add_argument, and shutil (which
    imports bz2 and lzma) would cost ~3 ms of every command. The width is what shutil would find."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: Optional[int] = None):
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


_COLUMNS: List[int] = []  # argparse makes a formatter for every add_argument: ask the terminal once


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal on stdout, else 80."""
    if not _COLUMNS:
        _COLUMNS.append(_measure_columns())
    return _COLUMNS[0]


def _measure_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _OnlyVerbs:
    """A subparsers action that builds only the named verbs' parsers (all when `wanted` is None)."""

    def __init__(self, action: Any, wanted: Optional[str]) -> None:
        self.action = action
        self.wanted = wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self.wanted is None or name == self.wanted:
            kwargs.setdefault("formatter_class", _HelpFormatter)
            return self.action.add_parser(name, **kwargs)
        return _Discard()


GLOBAL_VALUE_FLAGS = frozenset(flag.name for flag in GLOBAL_FLAGS if flag.kind != SWITCH)


def _positionals(argv: List[str]) -> List[str]:
    """The words before the verb's own arguments: the verb, and for `image` its subcommand."""
    words: List[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word in ("-h", "--help"):
            return []
        if word.startswith("-"):
            skip = word in GLOBAL_VALUE_FLAGS
            continue
        words.append(word)
        if len(words) == 2 or (words and words[0] != "image"):
            break
    return words


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The parser; given argv, only the parser of the verb it names is built (help builds them all)."""
    words = _positionals(argv) if argv is not None else []
    verb = words[0] if words else None
    parser = argparse.ArgumentParser(
        prog="rocket", description="rocket: an App Container runtime", formatter_class=_HelpFormatter
    )
    _add_global_flags(parser, top=True)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    wanted = verb if verb is not None and (verb in TOP_LEVEL_VERBS or verb == "image") else None
    if wanted != "image":
        _register(TOP_LEVEL_VERBS, verbs, wanted)
    if wanted in (None, "image"):
        image = verbs.add_parser("image", help="operate on images in the store", formatter_class=_HelpFormatter)
        image_verbs = image.add_subparsers(dest="image_verb", metavar="SUBCOMMAND", required=True)
        subverb = words[1] if wanted == "image" and len(words) > 1 and words[1] in IMAGE_VERBS else None
        _register(IMAGE_VERBS, image_verbs, subverb)
    for leaf in _leaf_parsers(parser):
        _add_global_flags(leaf, top=False)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> List[argparse.ArgumentParser]:
    leaves: List[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                leaves.extend(_leaf_parsers(child) or [child])
    return leaves
