# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)
"""What every appc.rocket module shares, and nothing else: the common options, the engine's folders
built from them, and the one place a RocketError becomes `fail_json`.

The engine (`module_utils/rocket/`) never imports Ansible; this file is the seam. It does not import
Ansible either: it receives the AnsibleModule from the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Optional

from ansible_collections.appc.rocket.plugins.module_utils.rocket.cli.context import parse_insecure_options
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError
from ansible_collections.appc.rocket.plugins.module_utils.rocket.paths import (
    DEFAULT_DATA_DIR,
    DEFAULT_LOCAL_CONFIG,
    DEFAULT_SYSTEM_CONFIG,
    StorePaths,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket.store import Store

# Mirrors plugins/doc_fragments/common.py; validate-modules checks that the two agree.
COMMON_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "dir": {"type": "path", "default": str(DEFAULT_DATA_DIR)},
    "local_config": {"type": "path", "default": str(DEFAULT_LOCAL_CONFIG)},
    "system_config": {"type": "path", "default": str(DEFAULT_SYSTEM_CONFIG)},
    "insecure_options": {"type": "list", "elements": "str", "default": []},
}


def argument_spec(**own: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """A module's argument spec: its own options plus the common ones."""
    spec = {name: dict(value) for name, value in COMMON_ARGUMENT_SPEC.items()}
    spec.update(own)
    return spec


@dataclass(frozen=True)
class Host:
    """The rocket folders and flags of one task, as the CLI's global flags would give them."""

    data_dir: Path
    local_config: Path
    system_config: Path
    insecure: FrozenSet[str]

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> Host:
        """Read the common options; UsageError for an unknown insecure option."""
        return cls(
            data_dir=Path(params["dir"]),
            local_config=Path(params["local_config"]),
            system_config=Path(params["system_config"]),
            insecure=parse_insecure_options(",".join(params["insecure_options"] or [])),
        )

    def store(self) -> Store:
        """Open the image store, creating it if it does not exist (for tasks that change the host)."""
        return Store(self.data_dir)

    def existing_store(self) -> Optional[Store]:
        """Open the image store only if it exists (for tasks that may remove images but never add one)."""
        if not StorePaths(self.data_dir).index_db.is_file():
            return None
        return Store(self.data_dir)

    def store_view(self) -> Optional[Store]:
        """The image store for look-ups only, None if there is none: writes nothing at all (check mode)."""
        return Store.read_only(self.data_dir)


def fail(module: Any, exc: RocketError, **result: Any) -> None:
    """End the task with the engine's error: what failed and on which input (`msg`), what to do (`hint`)."""
    context = {key: value for key, value in exc.context.items() if isinstance(value, (str, int, float, bool))}
    module.fail_json(
        msg=str(exc),
        hint=exc.hint,
        error=type(exc).__name__,
        reason=str(exc.context.get("reason", "")),
        context=context,
        **result,
    )


def lines_diff(before: Iterable[str], after: Iterable[str], *, header: str) -> Dict[str, str]:
    """A diff of two sets of lines (fingerprints, image IDs), sorted, one per line, for Ansible's --diff."""
    return {
        "before": "".join(f"{line}\n" for line in sorted(set(before))),
        "after": "".join(f"{line}\n" for line in sorted(set(after))),
        "before_header": f"{header} (before)",
        "after_header": f"{header} (after)",
    }


def image_facts(record: Any) -> Dict[str, Any]:
    """What a task returns about one stored image (an ImageRecord)."""
    return {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "labels": dict(record.labels),
        "size": record.size,
        "import_time": record.import_time,
        "last_used": record.last_used,
        "trust": record.trust,
    }


def sorted_unique(values: Iterable[str]) -> List[str]:
    return sorted(set(values))
