"""`rocket config`: the effective configuration of this invocation, as JSON."""

from __future__ import annotations

import argparse

from .context import Context
from .output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="print the effective configuration")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    print_json(
        {
            "dir": str(ctx.data_dir),
            "local-config": str(ctx.local_config),
            "system-config": str(ctx.system_config),
            "insecure-options": sorted(ctx.insecure),
            "max-image-size": ctx.limits.max_size,
            "max-image-entries": ctx.limits.max_entries,
        }
    )
    return 0
