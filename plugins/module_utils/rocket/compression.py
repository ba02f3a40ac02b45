"""Open an image archive as a stream of uncompressed tar bytes, whatever compression it uses.

The compression is told by magic bytes, never by the file name (every ACI ends in `.aci`).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
from typing import BinaryIO, Tuple

from .errors import ImageError

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# OpenPGP packets start with a tag byte whose top bit is set; the encrypted ACI issue decrypts these.
OPENPGP_TAGS = frozenset(range(0x80, 0x100))

BUFFER_SIZE = 1 << 20


def detect_compression(head: bytes) -> str:
    """Name the compression of a stream from its first bytes: gzip, bzip2, xz or none."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        raise ImageError(
            "archive is zstd-compressed, which the appc specification does not allow",
            rule="compression",
            hint="recompress it with gzip, bzip2 or xz, or leave it uncompressed",
        )
    return "none"


def open_tar_stream(raw: BinaryIO) -> tuple[BinaryIO, str]:
    """Wrap a raw archive stream so reads yield uncompressed tar bytes; returns (stream, compression)."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, BUFFER_SIZE)  # type: ignore[arg-type,type-var]
    kind = detect_compression(buffered.peek(8)[:8])
    if kind == "gzip":
        return gzip.GzipFile(fileobj=buffered, mode="rb"), kind  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(buffered, mode="rb"), kind  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(buffered, mode="rb"), kind  # type: ignore[return-value]
    return buffered, kind


def archive_image_id(path: os.PathLike[str] | str) -> Tuple[str, str]:
    """The image ID (SHA-512 of the uncompressed tar) of an archive file and its compression; reads only.

    An OpenPGP-encrypted archive has no ID until decrypted: ImageError (rule `encrypted`).
    """
    try:
        with open(path, "rb", buffering=0) as raw:
            buffered = io.BufferedReader(raw, BUFFER_SIZE)  # type: ignore[arg-type]
            head = buffered.peek(8)[:8]
            # As decrypt.is_encrypted: xz's magic also has the top bit set, an OpenPGP tag otherwise.
            if head and head[0] in OPENPGP_TAGS and not head.startswith((GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC)):
                raise ImageError(f"{path} is encrypted: its image ID is known only once decrypted", rule="encrypted")
            stream, kind = open_tar_stream(buffered)  # type: ignore[arg-type]
            digest = hashlib.sha512()
            try:
                for block in iter(lambda: stream.read(BUFFER_SIZE), b""):
                    digest.update(block)
            except DECOMPRESSION_ERRORS as exc:
                raise ImageError(f"{path} is not a readable {kind} archive: {exc}", rule="compression") from exc
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror}", hint="check the path", rule="io") from exc
    return "sha512-" + digest.hexdigest(), kind


# What the decompressors raise on a corrupt stream; the tar reader turns these into ImageError.
DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, gzip.BadGzipFile, ValueError)
