"""`rocket list`: every pod with its state, apps and network addresses."""

from __future__ import annotations

import argparse

from ..lifecycle import status
from ..pod import Pod
from .context import Context
from .output import add_format_flag, human_time, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list pods")
    add_format_flag(parser)
    parser.add_argument("--full", action="store_true", help="full UUIDs and image IDs")
    parser.add_argument("--no-legend", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pods = [status(pod) for pod in Pod.all(ctx.data_dir)]
    if args.format == "json":
        print_json(pods)
        return 0
    rows = []
    for pod in pods:
        apps = pod["apps"] or {"-": {}}
        for index, (name, app) in enumerate(apps.items()):
            image = str(app.get("image_name") or "")
            first = index == 0
            rows.append(
                [
                    (pod["uuid"] if args.full else pod["uuid"][:8]) if first else "",
                    name,
                    image,
                    pod["state"] if first else "",
                    human_time(pod["created"]) if first and pod["created"] else "",
                    human_time(pod["started"]) if first and pod["started"] else "",
                    ",".join(f"{n['name']}:{n['address'].split('/')[0]}" for n in pod["networks"]) if first else "",
                ]
            )
    print_table(
        ["UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"], rows, legend=not args.no_legend
    )
    return 0
