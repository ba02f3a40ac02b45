"""`rocket fetch IMAGE...`: bring images into the store, verified; IMAGE is a name, an https URL or a file."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional

from ..fetch import PULL_POLICIES, Fetcher, FetchResult
from .context import Context
from .output import say, tell
from .progress import progress_factory


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fetch", help="fetch images into the store")
    parser.add_argument(
        "images", nargs="+", metavar="IMAGE", help="name[:version][,label=value…], an https URL or a file path"
    )
    parser.add_argument("--signature", help="the detached signature (path or URL) instead of IMAGE.asc")
    parser.add_argument("--pull-policy", choices=PULL_POLICIES, default="new", help="when to look for newer images")
    parser.add_argument("--full", action="store_true", help="print full image IDs (the default is 19 characters)")
    parser.set_defaults(run=run)


def _lines(result: FetchResult, *, full: bool) -> List[str]:
    lines = [line for dependency in result.dependencies for line in _lines(dependency, full=full)]
    shown = result.record.id if full else result.record.id[:19]
    return [*lines, shown]


def run(args: argparse.Namespace, ctx: Context) -> int:
    progress: Optional[Callable[[str], Optional[Callable[[int, Optional[int]], None]]]] = (
        progress_factory(sys.stderr) if sys.stderr.isatty() else None
    )
    fetcher = Fetcher(
        ctx.store(),
        local_config=ctx.local_config,
        system_config=ctx.system_config,
        insecure=ctx.insecure,
        pull_policy=args.pull_policy,
        signature=args.signature,
        progress=progress,
    )
    for image in args.images:
        result = fetcher.fetch(image)
        if result.decision is not None and result.decision.how != "signature":
            tell(f"rocket: warning: {image}: {result.decision.reason}")
        for warning in result.warnings:
            tell(f"rocket: warning: {image}: {warning}")
        # Dependencies first, the requested image last: the last line is always the image asked for.
        for line in _lines(result, full=args.full):
            say(line)
    return 0
