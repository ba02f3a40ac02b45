"""`rocket image list`: the images in the store."""

from __future__ import annotations

import argparse

from .context import Context
from .output import add_format_flag, human_size, human_time, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list images in the store")
    add_format_flag(parser)
    parser.add_argument("--full", action="store_true", help="print full image IDs")
    parser.add_argument("--no-legend", action="store_true", help="leave out the header line")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    records = ctx.store().images()
    if args.format == "json":
        print_json([record.as_json() for record in records])
        return 0
    rows = [
        [
            record.id if args.full else record.id[:19],
            record.name + (f":{record.version}" if record.version else ""),
            human_size(record.size),
            human_time(record.import_time),
            human_time(record.last_used),
        ]
        for record in records
    ]
    print_table(["ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"], rows, legend=not args.no_legend)
    return 0
