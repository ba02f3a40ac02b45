"""Equality and a readable repr for the engine's plain data classes: what @dataclass would add.

`rocket run` is on a time budget (bench/start.py), and the dataclasses module with the code it generates
for each class cost ~15 ms of every pod start. The classes on that path write their `__init__` out and
list their fields in FIELDS; HASHABLE ones are read-only by convention and hash like their fields' tuple.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Tuple


class Record:
    FIELDS: Tuple[str, ...] = ()
    HASHABLE = False

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        if not self.HASHABLE:
            raise TypeError(f"unhashable type: {type(self).__name__!r}")
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({shown})"
