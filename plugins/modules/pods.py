#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: pods
short_description: Converge the whole set of declared appc pods of a host in one call
description:
  - Each entry of O(pods) declares one pod by a stable name. A pod is started when none of that name runs,
    and replaced (the old one stopped and removed, a new one started) only when its declared state or an
    image it resolves to changed. The decision comes from a stored record of the declared state
    (C(<dir>/desired/<name>.json)) and the annotations of the running pod, never from re-reading the
    running system.
  - With O(exclusive=true), declared pods whose names are not in O(pods) are stopped and removed. Pods
    started by hand with C(rocket run) carry no declared name and are never touched.
  - Images are resolved as C(rocket fetch) does (discovery, signature verification against the trusted
    keys of their names); O(pull_policy) decides when a newer image is looked for.
  - Before it starts a pod the module installs the engine it was shipped with under O(engine_dir),
    content-addressed, and the pod's supervisor runs from there.
  - The same records make C(rocket boot) (the runtime role's boot service) start the running pods again.
version_added: 0.1.0
author:
  - rocket developers (!UNKNOWN)
extends_documentation_fragment:
  - appc.rocket.common
  - appc.rocket.common.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is fetched, written or started. Images are looked up in the store's index only; one that is
        not there counts as a change (a warning names it).
  diff_mode:
    support: full
    details:
      - The declared state of each changed pod, before and after, as canonical JSON.
  platform:
    platforms: posix
options:
  pods:
    description:
      - The declared pods. Each is a mapping with the options of M(appc.rocket.pod) except the
        task-level ones (O(pull_policy), O(engine_dir) and the common options).
      - Keys are V(name) (required), V(state), V(apps), V(volumes), V(net), V(ports), V(dns), V(dns_search),
        V(dns_opt), V(dns_domain), V(hosts_entries), V(hostname), V(restart), V(flavor), V(stop_timeout),
        V(annotations). An unknown key fails the task and names it.
    type: list
    elements: dict
    required: true
  exclusive:
    description:
      - Remove the declared pods that O(pods) does not name.
    type: bool
    default: false
  pull_policy:
    description:
      - V(new) fetches an image only if the store has none of that name; V(update) asks the server
        every time; V(never) uses only the store.
    type: str
    choices: [new, update, never]
    default: new
  engine_dir:
    description:
      - Where the engine copies live that pod supervisors run from.
    type: path
    default: /usr/lib/rocket/engine
"""

EXAMPLES = r"""
- name: The pods of this host, and no others
  appc.rocket.pods:
    exclusive: true
    pods:
      - name: web
        apps:
          - image: example.com/web:1.0
            environment:
              GREETING: hello
        ports:
          - name: http
            host_port: 8080
      - name: worker
        apps:
          - image: example.com/worker:1.0
        restart: on-failure
        net: [none]
"""

RETURN = r"""
pods:
  description: What happened to each pod (also to those O(exclusive) removed).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The declared name.
      type: str
    action:
      description: V(unchanged), V(created), V(replaced), V(started), V(stopped) or V(removed).
      type: str
    changed:
      description: Whether this pod changed.
      type: bool
    uuid:
      description: The UUID of the pod running now (none in check mode for a pod still to start).
      type: str
    state:
      description: V(running), V(stopped) or V(absent).
      type: str
    image_ids:
      description: The image ID of each app.
      type: list
      elements: str
    networks:
      description: The pod's networks with interface and address (C(name), C(ifname), C(address), C(gateway)).
      type: list
      elements: dict
    reason:
      description: Why the pod was started or replaced.
      type: str
  sample:
    - name: web
      action: unchanged
      changed: false
      uuid: 1b4e28ba-2fa1-41d2-883f-0016d3cca427
      state: running
      image_ids: [sha512-8d3b...]
      networks: [{name: default, ifname: eth0, address: 172.16.28.2/24, gateway: 172.16.28.1}]
      reason: ""
engine_installed:
  description: Whether this task installed a new engine copy under O(engine_dir).
  returned: always
  type: bool
"""

from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.desired import Outcome, normalize
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError, UsageError
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import Host, argument_spec, fail
from ansible_collections.appc.rocket.plugins.module_utils.rocket_pods import TASK_OPTIONS, PodTask, outcomes_result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            pods={"type": "list", "elements": "dict", "required": True},
            exclusive={"type": "bool", "default": False},
            **TASK_OPTIONS,
        ),
        supports_check_mode=True,
    )
    task = None
    outcomes: List[Outcome] = []
    result: Dict[str, Any] = {"changed": False, "pods": [], "engine_installed": False}
    try:
        host = Host.from_params(module.params)
        task = PodTask(
            host,
            pull_policy=module.params["pull_policy"],
            engine_dir=module.params["engine_dir"],
            check=module.check_mode,
        )
        specs = [normalize(spec) for spec in module.params["pods"]]
        names = [spec["name"] for spec in specs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise UsageError(f"pods declared twice: {', '.join(twice)}", hint="give each pod one entry")
        # Every image first: one that cannot be fetched or is not trusted fails the task before any pod moves.
        for spec in specs:
            for app in spec.get("apps") or []:
                task.resolve(app["image"], module.check_mode)
        converger = task.converger()
        for spec in specs:
            outcomes.append(converger.converge(spec))
        if module.params["exclusive"]:
            outcomes += converger.remove_others(names)
        result = outcomes_result(outcomes, diff=module._diff)
        result["engine_installed"] = task.engine_installed
        for warning in task.warnings:
            module.warn(warning)
    except RocketError as exc:
        partial = outcomes_result(outcomes, diff=False)
        fail(module, exc, changed=partial["changed"], pods=partial["pods"])
    finally:
        if task is not None:
            task.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
