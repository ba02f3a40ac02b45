"""`rocket stop UUID…`: stop running pods (TERM, then KILL after the pod's stop timeout); `--force`: KILL now."""

from __future__ import annotations

import argparse

from ..lifecycle import stop
from ..pod import Pod
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stop", help="stop running pods")
    parser.add_argument("uuids", nargs="+", metavar="UUID")
    parser.add_argument("--force", action="store_true", help="kill at once")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pods = [Pod.find(ctx.data_dir, reference) for reference in args.uuids]
    stop(pods, force=args.force)
    for pod in pods:
        say(pod.uuid)
    return 0
