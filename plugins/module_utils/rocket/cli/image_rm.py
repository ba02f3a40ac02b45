"""`rocket image rm IMAGE...`: remove images (and renders built from them) from the store."""

from __future__ import annotations

import argparse

from ..errors import StoreError
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rm", help="remove images from the store")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image ID (any unique prefix) or name[:version]")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    records = [store.resolve(reference) for reference in args.images]  # all resolve before any is removed
    from ..lifecycle import images_in_use

    used = images_in_use(ctx.data_dir)
    for record in records:
        if record.id in used:
            raise StoreError(
                f"image {record.name} ({record.id[:19]}) is used by a pod",
                hint="remove the pod first ('rocket rm' or 'rocket gc'), then the image",
                image=record.id,
            )
    for record in records:
        store.remove(record.id)
        say(f"removed {record.id}")
    return 0
