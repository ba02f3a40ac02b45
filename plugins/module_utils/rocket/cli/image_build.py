"""`rocket image build DIR FILE`: make an ACI from a folder with `manifest` and `rootfs/`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..build import COMPRESSIONS, build_image
from ..errors import UsageError
from .context import Context
from .output import say, tell


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("build", help="build an image archive from a folder")
    parser.add_argument("source", metavar="DIR", help="a folder holding 'manifest' and 'rootfs/'")
    parser.add_argument("output", metavar="FILE", help="the .aci file to write")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="gzip", help="default: gzip")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.add_argument(
        "--source-date-epoch",
        type=int,
        default=None,
        help="clamp mtimes to this time (default: $SOURCE_DATE_EPOCH if set)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    epoch = args.source_date_epoch
    if epoch is None and os.environ.get("SOURCE_DATE_EPOCH"):
        try:
            epoch = int(os.environ["SOURCE_DATE_EPOCH"])
        except ValueError:
            raise UsageError("SOURCE_DATE_EPOCH is not a whole number of seconds") from None
    result = build_image(
        Path(args.source),
        Path(args.output),
        compression=args.compression,
        source_date_epoch=epoch,
        overwrite=args.overwrite,
    )
    for warning in result.warnings:
        tell(f"rocket: warning: {warning}")
    say(result.image_id)
    return 0
