"""Bounds on what one image archive may hold once uncompressed (decompression bombs)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_SIZE = 64 << 30
DEFAULT_MAX_ENTRIES = 1_000_000


@dataclass(frozen=True)
class ImportLimits:
    """The largest uncompressed size and entry count an import accepts (`--max-image-size/-entries`)."""

    max_size: int = DEFAULT_MAX_SIZE
    max_entries: int = DEFAULT_MAX_ENTRIES
