"""`rocket run`: prepare a pod and run it, in the foreground (exit code = the app's) or `--detach`ed."""

from __future__ import annotations

import argparse
import sys

from ..lifecycle import prepare, start
from .context import Context
from .output import say
from .podflags import add_pod_flags, pod_from_flags, save_uuid


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a pod")
    parser.add_argument("--detach", action="store_true", help="return once the pod runs")
    parser.add_argument("--interactive", action="store_true", help="give the app the terminal (one app)")
    add_pod_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    manifest, options = pod_from_flags(args, ctx)
    pod = prepare(
        ctx.store(),
        manifest,
        options,
        insecure_image="image" in ctx.insecure,
        durable=False,
        config_dirs=ctx.config_dirs(),
    )
    save_uuid(args, pod.uuid)
    ctx.close()  # the store's sqlite handle must not live on in the supervisor
    if args.detach:
        start(pod, detach=True)
        say(pod.uuid)
        return 0
    sys.stdout.flush()
    return start(pod, detach=False)
