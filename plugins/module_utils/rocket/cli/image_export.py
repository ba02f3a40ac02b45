"""`rocket image export IMAGE FILE`: write an image's archive, with the same image ID it was imported with."""

from __future__ import annotations

import argparse
import os

from ..errors import UsageError
from ..fileio import atomic_output
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write an image from the store to an .aci file")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("output", metavar="FILE")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    record = store.resolve(args.image)
    if os.path.lexists(args.output) and not args.overwrite:
        raise UsageError(f"{args.output} exists", hint="remove it or pass --overwrite")
    with atomic_output(args.output) as out:
        store.export(record.id, out)
    say(record.id)
    return 0
