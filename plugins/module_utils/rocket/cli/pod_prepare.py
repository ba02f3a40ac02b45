"""`rocket prepare`: make a pod ready to run (images fetched, verified and rendered) and print its UUID."""

from __future__ import annotations

import argparse

from ..lifecycle import prepare
from .context import Context
from .output import say
from .podflags import add_pod_flags, pod_from_flags, save_uuid


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prepare", help="prepare a pod to run later")
    add_pod_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    manifest, options = pod_from_flags(args, ctx)
    pod = prepare(ctx.store(), manifest, options, insecure_image="image" in ctx.insecure, config_dirs=ctx.config_dirs())
    save_uuid(args, pod.uuid)
    say(pod.uuid)
    return 0
