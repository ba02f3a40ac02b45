"""The command line's renderings of sizes and times."""

from __future__ import annotations

import os
import time
from typing import Iterator

import pytest

from rocket.cli.output import human_size, precise_time

MOMENT = 1795924133.5563667  # 2026-11-29 03:48:53.556 UTC


@pytest.fixture()
def zone(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run in the POSIX time zone given as the test's parameter (no tzdata needed), then restore."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("UTC0", "2026-11-29 03:48:53.556 +0000 UTC"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", "2026-11-29 04:48:53.556 +0100 CET"),
        ("EST5EDT,M3.2.0,M11.1.0", "2026-11-28 22:48:53.556 -0500 EST"),
    ],
    indirect=["zone"],
)
def test_precise_time_is_local_to_the_millisecond_with_the_zone(zone: None, shown: str) -> None:
    assert precise_time(MOMENT) == shown


@pytest.mark.parametrize("zone", ["UTC0"], indirect=True)
def test_precise_time_truncates_rather_than_rounding_into_the_next_second(zone: None) -> None:
    assert precise_time(1795924133.9999) == "2026-11-29 03:48:53.999 +0000 UTC"
    assert precise_time(1795924133.0) == "2026-11-29 03:48:53.000 +0000 UTC"


def test_human_size_picks_the_unit() -> None:
    assert human_size(512) == "512 B"
    assert human_size(2 * 1024 * 1024) == "2.0 MiB"
