"""`rocket version`."""

from __future__ import annotations

import argparse
import sys

from .. import AC_VERSION, __version__
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("version", help="print the version")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    say(f"rocket Version: {__version__}")
    say(f"appc Version: {AC_VERSION}")
    say(f"Python Version: {sys.version.split()[0]}")
    return 0
