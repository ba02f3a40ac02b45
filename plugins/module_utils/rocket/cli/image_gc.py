"""`rocket image gc`: remove images unused for longer than the grace period."""

from __future__ import annotations

import argparse

from .context import Context
from .output import say
from .units import parse_duration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gc", help="remove images not used recently")
    parser.add_argument("--grace-period", default="24h", help="keep images used within this long (default 24h)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    grace = parse_duration(args.grace_period, flag="--grace-period")
    from ..lifecycle import images_in_use

    for image_id in ctx.store().gc(grace_seconds=grace, in_use=images_in_use(ctx.data_dir)):
        say(f"removed {image_id}")
    return 0
