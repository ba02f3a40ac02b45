"""`rocket export [--app NAME] UUID FILE`: an app of a stopped pod, with its changes, as an ACI."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..lifecycle import export_app
from ..pod import Pod
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export an app of a stopped pod as an image")
    parser.add_argument("--app", help="the app (needed when the pod has several)")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.add_argument("uuid", metavar="UUID")
    parser.add_argument("output", metavar="FILE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pod = Pod.find(ctx.data_dir, args.uuid)
    say(export_app(pod, app=args.app, output=Path(args.output), overwrite=args.overwrite))
    return 0
