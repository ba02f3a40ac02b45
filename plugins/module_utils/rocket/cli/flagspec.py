"""Flags declared once, for both parsers of the command line.

argparse builds the parser of every verb (cli/parser.py). `rocket run` and `rocket prepare` also have a
fast path (cli/quickparse.py) that reads the same tables and skips argparse altogether when the command
line is plain: importing, building and running argparse cost ~7 ms of every pod start.
"""

from __future__ import annotations

from ..record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence

VALUE, APPEND, SWITCH = "value", "append", "switch"


class Flag(Record):
    """One long option: `--name VALUE` (value, or append to a list) or a bare `--name` (switch)."""

    FIELDS = ("name", "kind", "default", "choices", "convert", "help", "metavar")

    def __init__(
        self,
        name: str,
        kind: str = VALUE,
        default: Any = None,
        choices: Optional[Sequence[str]] = None,
        convert: Optional[Callable[[str], Any]] = None,
        help: str = "",  # pylint: disable=redefined-builtin
        metavar: Optional[str] = None,
    ) -> None:
        if kind not in (VALUE, APPEND, SWITCH):
            raise AssertionError(f"bug: flag kind {kind!r}")
        self.name = name
        self.kind = kind
        self.default = [] if kind == APPEND and default is None else default
        self.choices = choices
        self.convert = convert
        self.help = help
        self.metavar = metavar

    @property
    def dest(self) -> str:
        return self.name[2:].replace("-", "_")


# Accepted before or after the verb, as rkt's are.
GLOBAL_FLAGS = (
    Flag("--dir", help="data directory (default /var/lib/rocket, $ROCKET_DIR)"),
    Flag("--local-config", help="local config (default /etc/rocket)"),
    Flag("--system-config", help="vendor config (default /usr/lib/rocket)"),
    Flag("--insecure-options", help="comma-separated checks to skip"),
    Flag("--max-image-size", help="largest uncompressed image (default 64G)"),
    Flag("--max-image-entries", help="most entries in an image (default 1000000)"),
    Flag("--debug", SWITCH, default=False, help="print error chains in full"),
)


def add_flags(parser: Any, flags: Sequence[Flag], *, suppress_defaults: bool = False) -> None:
    """Register `flags` with an argparse parser; with `suppress_defaults` an absent flag sets nothing."""
    import argparse

    for flag in flags:
        options: dict = {"help": flag.help}
        if flag.kind == SWITCH:
            options["action"] = "store_true"
        elif flag.kind == APPEND:
            options["action"] = "append"
        if flag.choices is not None:
            options["choices"] = flag.choices
        if flag.convert is not None:
            options["type"] = flag.convert
        if flag.metavar is not None:
            options["metavar"] = flag.metavar
        options["default"] = argparse.SUPPRESS if suppress_defaults else flag.default
        parser.add_argument(flag.name, **options)
