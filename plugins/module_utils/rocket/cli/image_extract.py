"""`rocket image extract|render IMAGE DIR`: a copy of an image's own layer, or of its rendered tree."""

from __future__ import annotations

import argparse
import os
import shutil

from ..errors import UsageError
from ..fileio import remove_tree
from ..render import rendered_rootfs
from ..treecopy import merge_tree
from .context import Context
from .output import say


def register(subparsers: argparse._SubParsersAction) -> None:
    for verb, text in (
        ("extract", "copy an image's own files (without dependencies) to a folder"),
        ("render", "copy an image rendered with its dependencies to a folder"),
    ):
        parser = subparsers.add_parser(verb, help=text)
        parser.add_argument("image", metavar="IMAGE")
        parser.add_argument("destination", metavar="DIR")
        parser.add_argument(
            "--rootfs-only", action="store_true", help="copy only the root filesystem, not the manifest"
        )
        parser.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
        parser.set_defaults(run=run, rendered=(verb == "render"))


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    record = store.resolve(args.image)
    destination = os.path.abspath(args.destination)
    if os.path.lexists(destination):
        if not args.overwrite:
            raise UsageError(f"{destination} exists", hint="remove it or pass --overwrite")
        remove_tree(destination)
    source = rendered_rootfs(store, record.id) if args.rendered else store.paths.image_rootfs(record.id)
    rootfs = destination if args.rootfs_only else os.path.join(destination, "rootfs")
    os.makedirs(os.path.dirname(rootfs) or ".", exist_ok=True)
    merge_tree(str(source), rootfs, hardlink=False)
    if not args.rootfs_only:
        shutil.copyfile(store.paths.image_manifest(record.id), os.path.join(destination, "manifest"))
    store.touch(record.id)
    say(destination)
    return 0
