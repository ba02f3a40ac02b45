"""The fast path of `rocket run` and `rocket prepare`: a plain command line read without argparse.

Importing argparse, building the verb's parser and parsing cost ~7 ms of every pod start. A plain
command line (exact long options, then the images section) is read here from the same flag tables
(cli/flagspec.py) into the same attributes argparse would give. Anything else returns None and goes to
argparse, which then decides exactly as before: help, abbreviations, short options, `--`, an unknown
flag, a value that looks like an option, an invalid choice or number.
"""

from __future__ import annotations

import importlib

from .flagspec import APPEND, GLOBAL_FLAGS, SWITCH

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

    from .flagspec import Flag

# Verb -> its module under cli/, which defines FLAGS and run, and takes the images section as APPS.
QUICK_VERBS = {"run": "pod_run", "prepare": "pod_prepare"}
APPS = "apps"


class Arguments:
    """What argparse.Namespace holds, without argparse: the parsed values as attributes."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arguments) and vars(self) == vars(other)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in sorted(vars(self).items()))
        return f"Arguments({shown})"


def quick_parse(argv: List[str]) -> Optional[Arguments]:
    """The arguments of a plain `run` or `prepare` command line; None when argparse must read it."""
    known: Dict[str, Flag] = {flag.name: flag for flag in GLOBAL_FLAGS}
    values: Dict[str, Any] = {flag.dest: _default(flag) for flag in GLOBAL_FLAGS}
    verb: Optional[str] = None
    run: Any = None
    index = 0
    while index < len(argv):
        word = argv[index]
        if not word.startswith("--") or word == "--":
            if verb is not None and not word.startswith("-"):
                values[APPS] = argv[index:]  # the first image: the rest is the images section
                break
            if verb is not None or word not in QUICK_VERBS:
                return None
            verb = word
            module = importlib.import_module(f"{__package__}.{QUICK_VERBS[word]}")
            run = module.run
            for flag in module.FLAGS:
                known[flag.name] = flag
                values[flag.dest] = _default(flag)
            index += 1
            continue
        name, equals, value = word.partition("=")
        flag = known.get(name)
        if flag is None:
            return None
        if flag.kind == SWITCH:
            if equals:
                return None
            values[flag.dest] = True
            index += 1
            continue
        if not equals:
            index += 1
            if index == len(argv) or argv[index].startswith("-"):
                return None
            value = argv[index]
        if flag.choices is not None and value not in flag.choices:
            return None
        converted: Any = value
        if flag.convert is not None:
            try:
                converted = flag.convert(value)
            except ValueError:
                return None
        if flag.kind == APPEND:
            values[flag.dest] = [*values[flag.dest], converted]
        else:
            values[flag.dest] = converted
        index += 1
    if verb is None:
        return None
    values.setdefault(APPS, [])
    return Arguments(verb=verb, run=run, **values)


def _default(flag: Flag) -> Any:
    return list(flag.default) if flag.kind == APPEND else flag.default
