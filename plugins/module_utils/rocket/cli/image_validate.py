"""`rocket image validate FILE...`: check an image archive or a manifest (image or pod) against the spec."""

from __future__ import annotations

import argparse
import os
import tempfile

from ..compression import open_tar_stream
from ..errors import UsageError
from ..extract import extract_archive
from ..manifest import load_any_manifest, load_image_manifest
from .context import Context
from .output import say, tell


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="validate image archives or manifests")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    for path in args.files:
        try:
            raw = open(path, "rb", buffering=0)
        except OSError as exc:
            raise UsageError(f"cannot open {path}: {exc.strerror}") from exc
        with raw:
            head = raw.read(1024)
            raw.seek(0)
            if head.lstrip()[:1] == b"{":
                kind, _manifest = load_any_manifest(raw.read(), where=path)
                say(f"{path}: valid {kind}")
                continue
            stream, compression = open_tar_stream(raw)
            # The archive is really extracted (into a throw-away folder), so every rule applies as on import.
            with tempfile.TemporaryDirectory(prefix="rocket-validate-") as scratch:
                staging = os.path.join(scratch, "image")
                os.mkdir(staging, 0o700)
                with open(os.path.join(scratch, "skeleton"), "wb") as skeleton:
                    extraction = extract_archive(stream, staging, skeleton, limits=ctx.limits)
            load_image_manifest(extraction.manifest, where=f"manifest of {path}")
        for warning in extraction.warnings:
            tell(f"rocket: warning: {path}: {warning}")
        say(f"{path}: valid image {extraction.image_id} ({compression})")
    return 0
