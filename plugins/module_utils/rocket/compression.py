"""Open an image archive as a stream of uncompressed tar bytes, whatever compression it uses.

The compression is told by magic bytes, never by the file name (every ACI ends in `.aci`).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from typing import BinaryIO

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


# What the decompressors raise on a corrupt stream; the tar reader turns these into ImageError.
DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, gzip.BadGzipFile, ValueError)
