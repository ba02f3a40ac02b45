#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: List the images in rocket's store
description:
  - Returns the images in the store under O(dir), as C(rocket image list --format=json) does, optionally
    only those that O(names) name. Never changes anything, and does not create a store that does not exist.
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
  names:
    description:
      - Only the images these name, each an image name C(name[:version][,label=value...]) (every import that
        matches) or an image ID (a unique prefix of at least 8 hex digits, with or without C(sha512-)).
      - All images if not given.
    type: list
    elements: str
    aliases: [name]
seealso:
  - module: appc.rocket.image
"""

EXAMPLES = r"""
- name: All images
  appc.rocket.image_info:
  register: rocket_images

- name: The stored versions of one image
  appc.rocket.image_info:
    names: [example.com/app/web]
  register: web_images
"""

RETURN = r"""
images:
  description: The images, oldest import first (for O(names), in the order given, each newest import first).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The image ID.
      type: str
      sample: sha512-7f9c1a...
    name:
      description: The image name from its manifest.
      type: str
    version:
      description: Its C(version) label, V("") if it has none.
      type: str
    labels:
      description: All its labels.
      type: dict
    size:
      description: The uncompressed size in bytes.
      type: int
    import_time:
      description: When it was imported (seconds since the epoch).
      type: float
    last_used:
      description: When it was last used (seconds since the epoch).
      type: float
    trust:
      description: How it was accepted, V(signature:<fingerprint>), V(policy:<scope>) or V(insecure).
      type: str
"""

from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import (
    Host,
    argument_spec,
    fail,
    image_facts,
)


def list_images(host: Host, names: List[str]) -> List[Dict[str, Any]]:
    """The stored images, all or those `names` name (each image once); reads only."""
    store = host.store_view()
    if store is None:
        return []
    try:
        records = store.images() if not names else [record for name in names for record in store.matching(name)]
    finally:
        store.close()
    seen = set()
    unique = []
    for record in records:
        if record.id not in seen:
            seen.add(record.id)
            unique.append(record)
    return [image_facts(record) for record in unique]


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(names={"type": "list", "elements": "str", "aliases": ["name"]}),
        supports_check_mode=True,
    )
    try:
        images = list_images(Host.from_params(module.params), module.params["names"] or [])
    except RocketError as exc:
        fail(module, exc)
    module.exit_json(changed=False, images=images)


if __name__ == "__main__":
    main()
