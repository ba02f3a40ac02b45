"""`rocket image cat-manifest IMAGE`: print an image's manifest."""

from __future__ import annotations

import argparse
import json
import sys

from .context import Context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cat-manifest", help="print an image's manifest")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("--pretty-print", action="store_true", help="indent the JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    record = store.resolve(args.image)
    data = store.manifest_bytes(record.id)
    if args.pretty_print:
        sys.stdout.write(json.dumps(json.loads(data), indent=2) + "\n")
    else:
        sys.stdout.buffer.write(data)
        if not data.endswith(b"\n"):
            sys.stdout.write("\n")
    return 0
