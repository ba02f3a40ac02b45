#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod
short_description: Declare one appc pod by name - running, stopped or absent
description:
  - Starts the pod when none of that name runs, and replaces it only when its declared state or an image
    it resolves to changed, as M(appc.rocket.pods) does for a whole host (same records, same rules).
  - Options map to C(rocket run) flags; each app's options map to rkt's per-app flags.
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
      - Nothing is fetched, written or started; images are looked up in the store's index only.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  name:
    description: The pod's stable name (lower-case letters, digits and C(-)), kept as an annotation.
    type: str
    required: true
  state:
    description: V(running), V(stopped) (stopped, record kept) or V(absent) (stopped and removed).
    type: str
    choices: [running, stopped, absent]
    default: running
  apps:
    description:
      - The pod's apps, each a mapping. V(image) (required) is an image name, ID, URL or file, fetched
        and verified as C(rocket fetch) does; V(name), V(exec) (a list, the program and its arguments),
        V(environment) (a mapping), V(user), V(group), V(working_dir), V(memory), V(cpu), V(cpu_shares),
        V(oom_score_adj), V(caps_retain), V(caps_remove), V(seccomp), V(readonly_rootfs),
        V(supplementary_gids) and V(mounts) (a list of V(volume) and V(path)) are rkt's per-app flags.
      - Required unless O(state=absent).
    type: list
    elements: dict
  volumes:
    description:
      - The pod's volumes, each with V(name), V(kind) (V(host) or V(empty)), and V(source), V(read_only),
        V(mode), V(uid), V(gid) as C(rocket run --volume) takes them.
    type: list
    elements: dict
  net:
    description: The networks, as C(rocket run --net) (V(default), V(none), V(host), C(net.d) names, V(name:IP=...)).
    type: list
    elements: str
    default: [default]
  ports:
    description: Forwarded host ports, each with V(name) (an app's port), V(host_port) and optionally V(host_ip).
    type: list
    elements: dict
  dns:
    description: Name servers, or V(host) or V(none), as C(--dns).
    type: list
    elements: str
  dns_search:
    description: DNS search domains.
    type: list
    elements: str
  dns_opt:
    description: C(resolv.conf) options.
    type: list
    elements: str
  dns_domain:
    description: The C(resolv.conf) domain.
    type: str
  hosts_entries:
    description: Lines for C(/etc/hosts) as V(IP=HOST), or V(host) for the host's own file.
    type: list
    elements: str
  hostname:
    description: The pod's hostname (default C(rocket-<uuid>)).
    type: str
  restart:
    description: The restart policy of the pod's supervisor.
    type: str
    choices: ["no", on-failure, always]
    default: always
  flavor:
    description: The isolation flavor, V(ns) (namespaces) or V(fly) (chroot in the host's namespaces).
    type: str
    choices: [ns, fly]
    default: ns
  stop_timeout:
    description: Seconds between TERM and KILL when the pod stops.
    type: float
  annotations:
    description: Pod annotations (names are AC identifiers).
    type: dict
  pull_policy:
    description:
      - V(new) fetches only images the store lacks; V(update) asks the server every time; V(never) uses the store.
    type: str
    choices: [new, update, never]
    default: new
  engine_dir:
    description: Where the engine copies live that pod supervisors run from.
    type: path
    default: /usr/lib/rocket/engine
"""

EXAMPLES = r"""
- name: A web server on the default network, its port 80 on the host's 8080
  appc.rocket.pod:
    name: web
    apps:
      - image: example.com/web:1.0
        environment:
          GREETING: hello
    ports:
      - name: http
        host_port: 8080

- name: Gone
  appc.rocket.pod:
    name: old-worker
    state: absent
"""

RETURN = r"""
pod:
  description: What happened to the pod.
  returned: always
  type: dict
  contains:
    name:
      description: The declared name.
      type: str
    action:
      description: V(unchanged), V(created), V(replaced), V(started), V(stopped) or V(removed).
      type: str
    uuid:
      description: The UUID of the pod running now.
      type: str
    state:
      description: V(running), V(stopped) or V(absent).
      type: str
    image_ids:
      description: The image ID of each app.
      type: list
      elements: str
    networks:
      description: Interfaces and addresses.
      type: list
      elements: dict
  sample:
    name: web
    action: created
    uuid: 1b4e28ba-2fa1-41d2-883f-0016d3cca427
    state: running
    image_ids: [sha512-8d3b...]
    networks: [{name: default, ifname: eth0, address: 172.16.28.2/24, gateway: 172.16.28.1}]
uuid:
  description: The UUID of the pod running now, if one runs.
  returned: always
  type: str
"""

from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import Host, argument_spec, fail
from ansible_collections.appc.rocket.plugins.module_utils.rocket_pods import (
    POD_OPTIONS,
    TASK_OPTIONS,
    PodTask,
    outcomes_result,
    spec_from,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(**POD_OPTIONS, **TASK_OPTIONS),
        required_if=[("state", "running", ("apps",)), ("state", "stopped", ("apps",))],
        supports_check_mode=True,
    )
    task = None
    result: Dict[str, Any] = {"changed": False}
    try:
        host = Host.from_params(module.params)
        task = PodTask(
            host,
            pull_policy=module.params["pull_policy"],
            engine_dir=module.params["engine_dir"],
            check=module.check_mode,
        )
        outcome = task.converger().converge(spec_from(module.params))
        result = outcomes_result([outcome], diff=module._diff)
        result["pod"] = result.pop("pods")[0]
        result["uuid"] = outcome.uuid
        for warning in task.warnings:
            module.warn(warning)
    except RocketError as exc:
        fail(module, exc)
    finally:
        if task is not None:
            task.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
