"""`rocket logs UUID [--app NAME] [--follow]`: an app's output, kept by the pod's supervisor."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import UsageError
from ..pod import Pod
from .context import Context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("logs", help="show an app's output")
    parser.add_argument("uuid", metavar="UUID")
    parser.add_argument("--app", help="the app (needed when the pod has several)")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing while the pod runs")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pod = Pod.find(ctx.data_dir, args.uuid)
    apps = sorted((pod.runtime().get("apps") or {}).keys())
    app = args.app or (apps[0] if len(apps) == 1 else None)
    if app is None or app not in apps:
        raise UsageError(f"say which app: --app with one of {', '.join(apps)}")
    path = pod.files.app_log(app)
    position = 0
    while True:
        try:
            with open(path, "rb") as stream:
                stream.seek(position)
                data = stream.read()
        except FileNotFoundError:
            data = b""
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        position += len(data)
        if not args.follow or not pod.is_running():
            return 0
        time.sleep(0.2)
        pod = Pod.find(ctx.data_dir, pod.uuid)
        path = pod.files.app_log(app)
