"""`rocket cat-manifest UUID`: the pod manifest a pod runs."""

from __future__ import annotations

import argparse
import sys

from ..pod import Pod
from .context import Context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cat-manifest", help="print a pod's manifest")
    parser.add_argument("uuid", metavar="UUID")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pod = Pod.find(ctx.data_dir, args.uuid)
    sys.stdout.write(pod.files.manifest.read_text())
    sys.stdout.write("\n")
    return 0
