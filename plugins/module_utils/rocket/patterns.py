"""Regular expressions compiled on first use.

Compiling one costs 0.1-0.6 ms. Modules that compiled theirs at import made every command pay for all of
them, while `rocket run` (on a time budget: bench/start.py) uses only a few.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Union


class LazyPattern:
    """re.compile(pattern, flags), done the first time a method is called; the same methods."""

    __slots__ = ("_compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags
        self._compiled: Optional[re.Pattern[str]] = None

    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled

    def fullmatch(self, string: str) -> Optional[re.Match[str]]:
        return self.compiled().fullmatch(string)

    def match(self, string: str) -> Optional[re.Match[str]]:
        return self.compiled().match(string)

    def search(self, string: str) -> Optional[re.Match[str]]:
        return self.compiled().search(string)

    def findall(self, string: str) -> List[Any]:
        return self.compiled().findall(string)

    def sub(self, replacement: Union[str, Callable[[re.Match[str]], str]], string: str) -> str:
        return self.compiled().sub(replacement, string)

    def __repr__(self) -> str:
        return f"LazyPattern({self.pattern!r}, {self.flags!r})"
