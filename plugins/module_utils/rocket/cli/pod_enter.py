"""`rocket enter [--app NAME] UUID [CMD [ARGS…]]`: a command inside a running app, confined like the app."""

from __future__ import annotations

import argparse

from ..lifecycle import enter
from ..pod import Pod
from .context import Context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("enter", help="run a command in a running app (default /bin/sh)")
    parser.add_argument("--app", help="the app (needed when the pod has several)")
    parser.add_argument("uuid", metavar="UUID")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pod = Pod.find(ctx.data_dir, args.uuid)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return enter(pod, app=args.app, argv=command)
