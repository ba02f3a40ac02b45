# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)
"""What the pod modules (`pod`, `pods`) share: the options of one declared pod, and the engine's
Converger wired to this task (image resolution with trust, check mode, the engine copy)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from ansible_collections.appc.rocket.plugins.module_utils.rocket.cli.context import Context
from ansible_collections.appc.rocket.plugins.module_utils.rocket.desired import Converger, Outcome
from ansible_collections.appc.rocket.plugins.module_utils.rocket.engine_copy import DEFAULT_BASE, install_engine
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import NotFoundError
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import Host

# The options of one declared pod (the `pod` module's own, a `pods` entry's keys); desired.normalize checks them.
POD_OPTIONS: Dict[str, Dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["running", "stopped", "absent"], "default": "running"},
    "apps": {"type": "list", "elements": "dict"},
    "volumes": {"type": "list", "elements": "dict"},
    "net": {"type": "list", "elements": "str", "default": ["default"]},
    "ports": {"type": "list", "elements": "dict"},
    "dns": {"type": "list", "elements": "str"},
    "dns_search": {"type": "list", "elements": "str"},
    "dns_opt": {"type": "list", "elements": "str"},
    "dns_domain": {"type": "str"},
    "hosts_entries": {"type": "list", "elements": "str"},
    "hostname": {"type": "str"},
    "restart": {"type": "str", "choices": ["no", "on-failure", "always"], "default": "always"},
    "flavor": {"type": "str", "choices": ["ns", "fly"], "default": "ns"},
    "stop_timeout": {"type": "float"},
    "annotations": {"type": "dict"},
}
TASK_OPTIONS: Dict[str, Dict[str, Any]] = {
    "pull_policy": {"type": "str", "choices": ["new", "update", "never"], "default": "new"},
    "engine_dir": {"type": "path", "default": str(DEFAULT_BASE)},
}


def spec_from(params: Dict[str, Any]) -> Dict[str, Any]:
    """A pod spec from module parameters: the pod options that were given."""
    return {key: params[key] for key in POD_OPTIONS if params.get(key) is not None}


class PodTask:
    """One task's way to declared pods: resolves each image once, installs the engine only if a pod starts."""

    def __init__(self, host: Host, *, pull_policy: str, engine_dir: str, check: bool) -> None:
        self.host = host
        self.pull_policy = pull_policy
        self.engine_dir = engine_dir
        self.check = check
        self.ctx = Context(
            data_dir=host.data_dir,
            local_config=host.local_config,
            system_config=host.system_config,
            insecure=host.insecure,
        )
        self.resolved: Dict[str, Optional[str]] = {}
        self.fetcher: Any = None
        self.view: Optional[Any] = None  # the store read without touching it (check mode), once
        self.view_opened = False
        self.warnings: List[str] = []
        self.engine_installed = False

    def resolve(self, reference: str, check: bool) -> Optional[str]:
        if reference in self.resolved:
            return self.resolved[reference]
        if check:
            # Check mode reads the index and nothing else: an image not in the store would be fetched.
            if not self.view_opened:
                self.view, self.view_opened = self.host.store_view(), True
            record = None
            if self.view is not None and self.pull_policy != "update":
                with contextlib.suppress(NotFoundError):
                    record = self.view.resolve(reference)
            if record is None:
                self.warnings.append(f"check mode: {reference} would be fetched")
            image_id = record.id if record is not None else None
        else:
            if self.fetcher is None:
                from ansible_collections.appc.rocket.plugins.module_utils.rocket.fetch import Fetcher

                self.fetcher = Fetcher(
                    self.ctx.store(),
                    local_config=self.host.local_config,
                    system_config=self.host.system_config,
                    insecure=self.host.insecure,
                    pull_policy=self.pull_policy,
                )
            image_id = str(self.fetcher.fetch(reference).record.id)
        self.resolved[reference] = image_id
        return image_id

    def converger(self) -> Converger:
        return Converger(
            self.ctx,
            resolve=self.resolve,
            check=self.check,
            engine=self.engine,
            insecure_image="image" in self.host.insecure,
        )

    def engine(self) -> str:
        """The installed engine copy a supervisor runs from (Ansible deletes this module's own files)."""
        root, new = install_engine(Path(self.engine_dir))
        self.engine_installed = self.engine_installed or new
        return root

    def close(self) -> None:
        if self.view is not None:
            self.view.close()
        self.ctx.close()


def outcomes_result(outcomes: List[Outcome], *, diff: bool) -> Dict[str, Any]:
    """The module result for converged pods: changed, each pod's outcome, and a diff of changed specs."""
    result: Dict[str, Any] = {
        "changed": any(outcome.changed for outcome in outcomes),
        "pods": [outcome.to_json() for outcome in outcomes],
    }
    if diff:
        changed = [outcome for outcome in outcomes if outcome.changed]
        result["diff"] = {
            "before": "".join(_show(o.name, o.before) for o in changed),
            "after": "".join(_show(o.name, o.after if o.action != "removed" else None) for o in changed),
            "before_header": "declared pods (before)",
            "after_header": "declared pods (after)",
        }
    return result


def _show(name: str, spec: Optional[Dict[str, Any]]) -> str:
    if spec is None:
        return f"{name}: (none)\n"
    return f"{name}: {json.dumps(spec, indent=2, sort_keys=True)}\n"
