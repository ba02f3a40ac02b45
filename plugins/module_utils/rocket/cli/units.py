"""Parsing of the sizes and durations operators type on the command line."""

from __future__ import annotations

import re

from ..errors import UsageError
from ..patterns import LazyPattern

_SIZE = LazyPattern(r"^(\d+)([KMGT]i?B?|B)?$", re.IGNORECASE)
_DURATION = LazyPattern(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str, *, flag: str) -> int:
    """`64G`, `512Mi`, `1000` (bytes) into bytes; K/M/G/T are powers of 1024 either way."""
    match = _SIZE.match(text.strip())
    if not match:
        raise UsageError(f"{flag}: {text!r} is not a size", hint="write it like 64G, 512M or 1048576")
    number, unit = int(match.group(1)), (match.group(2) or "B").upper()
    return number * (1024 ** "BKMGT".index(unit[0]))


def parse_duration(text: str, *, flag: str) -> float:
    """Go-style durations (`24h`, `10m30s`, `0s`) into seconds."""
    stripped = text.strip()
    if stripped == "0":
        return 0.0
    parts = _DURATION.findall(stripped)
    if not parts or "".join(n + u for n, u in parts) != stripped:
        raise UsageError(f"{flag}: {text!r} is not a duration", hint="write it like 24h, 30m or 0s")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)
