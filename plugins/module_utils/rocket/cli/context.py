"""What every command gets: the global flags resolved against environment variables and defaults."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError
from ..limits import ImportLimits
from ..paths import DEFAULT_DATA_DIR, DEFAULT_LOCAL_CONFIG, DEFAULT_SYSTEM_CONFIG
from ..record import Record
from ..store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import FrozenSet, List, Optional

# rkt's names; "all" and the two group names expand below.
INSECURE_OPTIONS = frozenset({"none", "image", "tls", "ondisk", "http", "pubkey", "capabilities", "paths", "seccomp"})
INSECURE_GROUPS = {
    "all-fetch": frozenset({"image", "tls", "http"}),
    "all-run": frozenset({"capabilities", "paths", "seccomp"}),
    "all": INSECURE_OPTIONS - {"none"},
}


def parse_insecure_options(text: str) -> FrozenSet[str]:
    """Turn `--insecure-options=image,http` into a set, refusing unknown names."""
    chosen: set = set()
    for word in (part.strip() for part in text.split(",") if part.strip()):
        if word in INSECURE_GROUPS:
            chosen |= INSECURE_GROUPS[word]
        elif word in INSECURE_OPTIONS:
            chosen.add(word)
        else:
            known = ", ".join(sorted(INSECURE_OPTIONS | set(INSECURE_GROUPS)))
            raise UsageError(f"unknown insecure option {word!r}", hint=f"known options: {known}")
    chosen.discard("none")
    return frozenset(chosen)


class Context(Record):
    """The resolved global options of one command."""

    FIELDS = ("data_dir", "local_config", "system_config", "insecure", "debug", "limits", "_store")

    def __init__(
        self,
        data_dir: Path = DEFAULT_DATA_DIR,
        local_config: Path = DEFAULT_LOCAL_CONFIG,
        system_config: Path = DEFAULT_SYSTEM_CONFIG,
        insecure: FrozenSet[str] = frozenset(),
        debug: bool = False,
        limits: Optional[ImportLimits] = None,
        store: Optional[Store] = None,
    ) -> None:
        self.data_dir = data_dir
        self.local_config = local_config
        self.system_config = system_config
        self.insecure = insecure
        self.debug = debug
        self.limits = ImportLimits() if limits is None else limits
        self._store = store

    def store(self) -> Store:
        """Open the image store once per command (which also repairs crash leftovers)."""
        if self._store is None:
            self._store = Store(self.data_dir, limits=self.limits)
        return self._store

    def config_dirs(self) -> List[Path]:
        """The config folders, the local one first (it wins)."""
        return [self.local_config, self.system_config]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default
