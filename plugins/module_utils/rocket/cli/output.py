"""Tables for people and JSON for programs: every listing command offers both."""

from __future__ import annotations

import json
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Sequence

FORMATS = ("table", "json")


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, legend: bool = True) -> None:
    """Columns padded to their widest cell, rkt style."""
    lines = ([list(headers)] if legend else []) + [list(row) for row in rows]
    if not lines:
        return
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("bug: unreachable")


def human_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def precise_time(timestamp: float) -> str:
    """A moment as rkt's `status` shows one: local time to the millisecond, with the zone's offset and name."""
    moment = time.localtime(timestamp)
    millis = int(timestamp % 1 * 1000)
    return time.strftime(f"%Y-%m-%d %H:%M:%S.{millis:03d} %z %Z", moment)


def add_format_flag(parser: Any) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


# The CLI writes through these two, never print(): the engine is also Ansible module_utils, where
# ansible-test forbids print (a module's stdout must be its JSON result).
def say(line: object) -> None:
    """One line of a command's result, on stdout."""
    sys.stdout.write(f"{line}\n")


def tell(line: str) -> None:
    """One line for the operator (a warning, an error, a hint), on stderr."""
    sys.stderr.write(f"{line}\n")
