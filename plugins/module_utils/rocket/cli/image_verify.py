"""`rocket image verify [IMAGE...]`: re-hash stored images against their IDs."""

from __future__ import annotations

import argparse

from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("verify", help="check that stored images still hash to their IDs")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="default: every image")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    records = [store.resolve(reference) for reference in args.images] if args.images else store.images()
    for record in records:
        store.verify(record.id)
        say(f"ok {record.id}")
    return 0
