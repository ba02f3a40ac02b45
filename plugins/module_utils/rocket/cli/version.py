"""`rocket version`."""

from __future__ import annotations

import argparse
import sys

from .. import AC_VERSION, __version__
from .context import Context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("version", help="print the version")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    print(f"rocket Version: {__version__}")
    print(f"appc Version: {AC_VERSION}")
    print(f"Python Version: {sys.version.split()[0]}")
    return 0
