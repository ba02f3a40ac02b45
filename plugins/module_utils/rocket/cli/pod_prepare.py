"""`rocket prepare`: make a pod ready to run (images fetched, verified and rendered) and print its UUID."""

from __future__ import annotations

from ..lifecycle import prepare
from .context import Context
from .output import say
from .podflags import POD_FLAGS, add_pod_flags, pod_from_flags, save_uuid

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any

FLAGS = POD_FLAGS  # cli/quickparse.py reads them too


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("prepare", help="prepare a pod to run later")
    add_pod_flags(parser)
    parser.set_defaults(run=run)


def run(args: Any, ctx: Context) -> int:
    manifest, options = pod_from_flags(args, ctx)
    pod = prepare(ctx.store(), manifest, options, insecure_image="image" in ctx.insecure, config_dirs=ctx.config_dirs())
    save_uuid(args, pod.uuid)
    say(pod.uuid)
    return 0
