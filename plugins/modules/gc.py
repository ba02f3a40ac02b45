#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: gc
short_description: Garbage-collect rocket's exited pods and unused images
description:
  - Removes pods that exited longer ago than O(pod_grace_period) (as C(rocket gc)), then images that no
    remaining pod uses and that were not used within O(image_grace_period) (as C(rocket image gc)), with
    the rendered trees built from them.
  - A pod found exited for the first time is marked exited now, so it is removed only once its grace
    period has passed (at once with a zero grace period). Prepared pods never started are removed a day
    after they were prepared.
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
      - Reports what would be removed without removing, moving or locking anything.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  pods:
    description:
      - Collect exited pods.
    type: bool
    default: true
  images:
    description:
      - Collect unused images.
    type: bool
    default: true
  pod_grace_period:
    description:
      - How long an exited pod is kept, as C(rocket gc --grace-period) (C(30m), C(1h30m), C(0s)).
    type: str
    default: 30m
  image_grace_period:
    description:
      - How long an image that no pod uses is kept after its last use, as C(rocket image gc --grace-period).
    type: str
    default: 24h
seealso:
  - module: appc.rocket.image
"""

EXAMPLES = r"""
- name: Collect pods and images with rocket's default grace periods
  appc.rocket.gc:

- name: Remove every exited pod and every image no pod uses, now
  appc.rocket.gc:
    pod_grace_period: 0s
    image_grace_period: 0s
"""

RETURN = r"""
removed_pods:
  description: The UUIDs of the pods removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
removed_images:
  description: The IDs of the images removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [sha512-7f9c1a...]
"""

from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.cli.units import parse_duration
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError
from ansible_collections.appc.rocket.plugins.module_utils.rocket.garbage import (
    images_to_collect,
    images_used_by,
    pods_to_collect,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket.lifecycle import gc, images_in_use
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import (
    Host,
    argument_spec,
    fail,
    lines_diff,
)


def collect(module: AnsibleModule, host: Host) -> Dict[str, Any]:
    """Pods first (their images become unused), then images; in check mode only what would go."""
    params = module.params
    pod_grace = parse_duration(params["pod_grace_period"], flag="pod_grace_period")
    image_grace = parse_duration(params["image_grace_period"], flag="image_grace_period")
    pods: List[str] = []
    if params["pods"]:
        pods = (
            pods_to_collect(host.data_dir, grace_seconds=pod_grace)
            if module.check_mode
            else gc(host.data_dir, grace_seconds=pod_grace)
        )
    images: List[str] = []
    store = None
    if params["images"]:
        store = host.store_view() if module.check_mode else host.existing_store()
    if store is not None:
        try:
            if module.check_mode:
                in_use = images_used_by(host.data_dir, excluding=set(pods))
                images = images_to_collect(store, grace_seconds=image_grace, in_use=in_use)
            else:
                images = store.gc(grace_seconds=image_grace, in_use=images_in_use(host.data_dir))
        finally:
            store.close()
    result: Dict[str, Any] = {"changed": bool(pods or images), "removed_pods": pods, "removed_images": images}
    if module._diff:
        gone = [f"pod {uuid}" for uuid in pods] + [f"image {image_id}" for image_id in images]
        result["diff"] = lines_diff(gone, [], header=f"rocket gc ({host.data_dir})")
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            pods={"type": "bool", "default": True},
            images={"type": "bool", "default": True},
            pod_grace_period={"type": "str", "default": "30m"},
            image_grace_period={"type": "str", "default": "24h"},
        ),
        supports_check_mode=True,
    )
    try:
        result = collect(module, Host.from_params(module.params))
    except RocketError as exc:
        fail(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
