"""`rocket rm UUID…`: remove exited or prepared pods."""

from __future__ import annotations

import argparse

from ..lifecycle import remove
from ..pod import Pod
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rm", help="remove pods that are not running")
    parser.add_argument("uuids", nargs="+", metavar="UUID")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    for reference in args.uuids:
        pod = Pod.find(ctx.data_dir, reference)
        remove(pod)
        say(f"removed {pod.uuid}")
    return 0
