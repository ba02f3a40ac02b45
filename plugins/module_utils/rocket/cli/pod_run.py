"""`rocket run`: prepare a pod and run it, in the foreground (exit code = the app's) or `--detach`ed."""

from __future__ import annotations

import os
import sys

from ..lifecycle import prepare, refuse_detached_interactive, require_root, start
from .context import Context
from .flagspec import SWITCH, Flag, add_flags
from .podflags import POD_FLAGS, add_pod_flags, pod_from_flags, save_uuid

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any

RUN_FLAGS = (
    Flag("--detach", SWITCH, default=False, help="return once the pod runs"),
    Flag("--interactive", SWITCH, default=False, help="give the app the terminal (one app)"),
)
FLAGS = (*RUN_FLAGS, *POD_FLAGS)  # cli/quickparse.py reads them too


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run a pod")
    add_flags(parser, RUN_FLAGS)
    add_pod_flags(parser)
    parser.set_defaults(run=run)


def run(args: Any, ctx: Context) -> int:
    require_root("running a pod")  # before a pod folder is made that could never run
    if args.detach and args.interactive:
        refuse_detached_interactive()
    if args.interactive and os.isatty(0):
        from ..stage1.terminal import require_foreground

        require_foreground("rocket run --interactive")  # before a pod folder is made
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
        from .output import say  # a foreground run prints nothing of its own

        say(pod.uuid)
        return 0
    sys.stdout.flush()
    return start(pod, detach=False)
