"""A download progress gauge for terminals: one line, redrawn at most ten times a second."""

from __future__ import annotations

import time
from typing import Callable, Optional, TextIO

from .output import human_size

Progress = Callable[[int, Optional[int]], None]


def progress_factory(stream: TextIO) -> Callable[[str], Optional[Progress]]:
    """Make a per-URL progress callback that draws on `stream` (a terminal)."""

    def for_url(url: str) -> Optional[Progress]:
        label = url.rsplit("/", 1)[-1][:40]
        last = [0.0]

        def show(done: int, total: Optional[int]) -> None:
            now = time.monotonic()
            finished = total is not None and done >= total
            if now - last[0] < 0.1 and not finished:
                return
            last[0] = now
            if total:
                width = 30
                filled = int(width * done / total)
                gauge = "#" * filled + "-" * (width - filled)
                text = f"\r{label} [{gauge}] {human_size(done)} / {human_size(total)}"
            else:
                text = f"\r{label} {human_size(done)}"
            stream.write(text + ("\n" if finished else ""))
            stream.flush()

        return show

    return for_url
