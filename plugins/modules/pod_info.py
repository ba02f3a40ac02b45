#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_info
short_description: The pods of a host - declared names, states, addresses, apps
description:
  - Lists the pods under O(dir) as C(rocket list --format=json) does, with the declared name of each pod
    that M(appc.rocket.pod) or M(appc.rocket.pods) started. Changes nothing.
version_added: 0.1.0
author:
  - rocket developers (!UNKNOWN)
extends_documentation_fragment:
  - appc.rocket.common
  - appc.rocket.common.attributes
  - appc.rocket.common.info_module
attributes:
  platform:
    platforms: posix
options:
  name:
    description: Only the pods of this declared name.
    type: str
"""

EXAMPLES = r"""
- name: Where does web run?
  appc.rocket.pod_info:
    name: web
  register: web

- name: Show its address
  ansible.builtin.debug:
    msg: "{{ web.pods | selectattr('state', 'eq', 'running') | map(attribute='networks') | list }}"
"""

RETURN = r"""
pods:
  description: Each pod, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    uuid:
      description: The pod's UUID.
      type: str
    name:
      description: Its declared name, or null for a pod started by hand.
      type: str
    state:
      description: rkt's state names (V(prepared), V(running), V(exited), ...).
      type: str
    networks:
      description: Interfaces and addresses.
      type: list
      elements: dict
    apps:
      description: Per app, its image and exit code.
      type: dict
  sample:
    - uuid: 1b4e28ba-2fa1-41d2-883f-0016d3cca427
      name: web
      state: running
      networks: [{name: default, ifname: eth0, address: 172.16.28.2/24, gateway: 172.16.28.1}]
      apps: {web: {image_name: example.com/web, exit_code: null}}
"""

from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.desired import NAME_ANNOTATION, pod_annotations
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError
from ansible_collections.appc.rocket.plugins.module_utils.rocket.lifecycle import status
from ansible_collections.appc.rocket.plugins.module_utils.rocket.pod import GARBAGE, Pod
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import Host, argument_spec, fail


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(name={"type": "str"}), supports_check_mode=True)
    pods: List[Dict[str, Any]] = []
    try:
        host = Host.from_params(module.params)
        if host.data_dir.is_dir():
            for pod in sorted(Pod.all(host.data_dir), key=lambda p: p.created()):
                if pod.state == GARBAGE:
                    continue
                name = pod_annotations(pod).get(NAME_ANNOTATION)
                if module.params["name"] and name != module.params["name"]:
                    continue
                pods.append(dict(status(pod), name=name))
    except RocketError as exc:
        fail(module, exc)
    module.exit_json(changed=False, pods=pods)


if __name__ == "__main__":
    main()
