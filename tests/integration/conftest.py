"""Fixtures: ACIs built on the fly, and a store in a temporary data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from images import ImageMaker, image_maker
from rocket.store import Store


@pytest.fixture
def make_image(tmp_path: Path) -> ImageMaker:
    return image_maker(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "data")
    yield opened
    opened.close()
