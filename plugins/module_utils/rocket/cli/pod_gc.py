"""`rocket gc`: remove pods that exited longer ago than the grace period, with their cgroups."""

from __future__ import annotations

import argparse

from ..lifecycle import gc
from .context import Context
from .output import say
from .units import parse_duration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gc", help="garbage-collect exited pods")
    parser.add_argument("--grace-period", default="30m", help="keep exited pods this long (default 30m)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    for uuid in gc(ctx.data_dir, grace_seconds=parse_duration(args.grace_period, flag="--grace-period")):
        say(f"removed {uuid}")
    return 0
