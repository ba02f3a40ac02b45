"""Sizes and durations typed on the command line."""

from __future__ import annotations

import pytest

from rocket.cli.units import parse_duration, parse_size
from rocket.errors import UsageError


@pytest.mark.parametrize(
    ("text", "size"),
    [("1000", 1000), ("1K", 1024), ("64G", 64 << 30), ("512Mi", 512 << 20), ("2GiB", 2 << 30), ("7b", 7)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text, flag="--x") == size


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("0s", 0), ("24h", 86400), ("10m30s", 630), ("1.5s", 1.5)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, flag="--x") == seconds


@pytest.mark.parametrize("text", ["", "1X", "-1", "1.5G", "G"])
def test_bad_sizes_name_the_flag(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_size(text, flag="--max-image-size")
    assert "--max-image-size" in caught.value.message


@pytest.mark.parametrize("text", ["", "h", "10 m", "1h2", "-1s", "soon"])
def test_bad_durations_name_the_flag(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text, flag="--grace-period")
    assert "--grace-period" in caught.value.message
