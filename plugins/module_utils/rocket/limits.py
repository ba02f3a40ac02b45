"""Bounds on what one image archive may hold once uncompressed (decompression bombs)."""

from __future__ import annotations

from .record import Record

DEFAULT_MAX_SIZE = 64 << 30
DEFAULT_MAX_ENTRIES = 1_000_000


class ImportLimits(Record):
    """The largest uncompressed size and entry count an import accepts (`--max-image-size/-entries`)."""

    FIELDS = ("max_size", "max_entries")
    HASHABLE = True

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_size = max_size
        self.max_entries = max_entries
