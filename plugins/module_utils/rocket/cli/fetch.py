"""`rocket fetch IMAGE...`: bring images into the store.

Until signature verification lands, only local files can be fetched, and only with
`--insecure-options=image`: rocket fails closed from the first day.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..audit import AuditLog
from ..errors import TrustError, UsageError
from .context import Context


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fetch", help="fetch images into the store")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="an image file path")
    parser.add_argument("--full", action="store_true", help="print full image IDs (the default for fetch)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    for image in args.images:
        if not os.path.exists(image):
            raise UsageError(
                f"{image}: no such file",
                hint="fetching by name or URL needs discovery, which this version does not have yet; give a file path",
                image=image,
            )
        if "image" not in ctx.insecure:
            AuditLog(ctx.store().paths.audit_log).record("rejected", name=image, source=image, reason="unsigned")
            raise TrustError(
                f"{image}: cannot verify the image's signature, so it is not trusted",
                hint="pass --insecure-options=image to import it without verification",
                image=image,
            )
    store = ctx.store()
    audit = AuditLog(store.paths.audit_log)
    for image in args.images:
        result = store.import_archive(image)
        audit.record("accepted-insecure", image=result.record.id, name=result.record.name, source=image, flag="image")
        print(
            f"rocket: warning: {image}: image signature verification skipped (--insecure-options=image)",
            file=sys.stderr,
        )
        for warning in result.warnings:
            print(f"rocket: warning: {image}: {warning}", file=sys.stderr)
        print(result.record.id)
    return 0
