"""`rocket run-prepared UUID`: run a prepared pod."""

from __future__ import annotations

import argparse

from ..lifecycle import start
from ..pod import Pod
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run-prepared", help="run a prepared pod")
    parser.add_argument("uuid", metavar="UUID")
    parser.add_argument("--detach", action="store_true", help="return once the pod runs")
    parser.add_argument("--interactive", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pod = Pod.find(ctx.data_dir, args.uuid)
    code = start(pod, detach=args.detach)
    if args.detach:
        say(pod.uuid)
    return code
