"""`rocket boot`: start again the declared pods (the `pods` module's) that should run and do not.

The runtime role's `rocket-boot.service` runs it once at boot; it is safe to run at any time. Images come
from the store by the IDs the records hold: a boot never fetches.
"""

from __future__ import annotations

import argparse

from ..desired import boot
from .context import Context
from .output import add_format_flag, print_json, say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("boot", help="start the declared pods that should be running")
    add_format_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    outcomes = boot(ctx)
    if args.format == "json":
        print_json([outcome.to_json() for outcome in outcomes])
    else:
        for outcome in outcomes:
            detail = f" ({outcome.reason})" if outcome.reason else ""
            say(f"{outcome.name}: {outcome.action} {outcome.uuid or ''}{detail}".rstrip())
    return 1 if any(outcome.action == "failed" for outcome in outcomes) else 0
