"""`rocket status UUID`: a pod's state, times, pid, networks and app exit codes; `--wait` until it exits."""

from __future__ import annotations

import argparse
import time

from ..errors import PodStateError
from ..lifecycle import status
from ..pod import Pod
from .context import Context
from .output import add_format_flag, precise_time, print_json, say

# Shown as local times in the text form, as rkt does; --format=json keeps the seconds since the epoch.
TIMES = ("created", "started", "finished")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="show a pod's status")
    parser.add_argument("uuid", metavar="UUID")
    parser.add_argument("--wait", action="store_true", help="wait until the pod exits")
    parser.add_argument("--timeout", default=None, help="with --wait: give up after this long (e.g. 30s)")
    parser.add_argument(
        "--check-network",
        action="store_true",
        help="check that a running pod's networks are intact (CNI CHECK for plugin networks)",
    )
    add_format_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    pod = Pod.find(ctx.data_dir, args.uuid)
    if args.wait:
        from .units import parse_duration

        limit = None if args.timeout is None else parse_duration(args.timeout, flag="--timeout")
        deadline = None if limit is None else time.monotonic() + limit
        while pod.display_state() in ("running", "prepared", "preparing", "embryo"):
            if deadline is not None and time.monotonic() > deadline:
                raise PodStateError(f"pod {pod.uuid} is still {pod.display_state()}", hint="wait longer")
            time.sleep(0.05)
            pod = Pod.find(ctx.data_dir, pod.uuid)
    result = status(pod)
    if args.check_network:
        from ..errors import NetworkError
        from ..net.attach import check

        if result["state"] != "running" or result["pid"] is None:
            raise PodStateError(f"pod {pod.uuid} is not running", hint="only a running pod's networks can be checked")
        problems = check(pod.files, pod.uuid, int(result["pid"]))
        if problems:
            raise NetworkError(f"pod {pod.uuid}: {'; '.join(problems)}", hint="stop the pod and start it again")
        result["network_check"] = "ok"
    if args.format == "json":
        print_json(result)
        return 0
    for key in ("uuid", "state", "created", "started", "finished", "pid", "exit_code", "network_check"):
        if result.get(key) is not None:
            say(f"{key}={precise_time(result[key]) if key in TIMES else result[key]}")
    if result["networks"]:
        shown = ",".join(f"{n['name']}:{n['ifname']}:{n['address']}" for n in result["networks"])
        say(f"networks={shown}")
    for name, app in result["apps"].items():
        if app.get("exit_code") is not None:
            say(f"app-{name}={app['exit_code']}")
    return 0
