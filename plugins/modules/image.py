#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Ensure an appc image is in rocket's store (fetched and verified), or not
description:
  - With O(state=present), fetches an image as C(rocket fetch) does, by name through appc discovery,
    from an C(https://) URL, or from a file on the host; verifies its signature against the keys
    trusted for its name and the trust policy; and imports it with its dependencies.
  - A validly signed image served under another name or labels, or older than one already in the store
    when no version is asked for, is refused, and the store is left as it was.
  - With O(state=absent), removes every stored image the name (or image ID) names, unless a pod uses it.
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
      - Nothing is downloaded or written. Whether the task would change the host is judged from the
        store's index and download records; a file on the host is read to compute its image ID.
      - A file that does not exist yet (made by an earlier task that check mode did not run) counts as an
        image to import, with a warning.
      - With O(pull_policy=update), whether a newer image exists cannot be known without asking the
        server, so check mode reports no change for an image already stored and warns.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  name:
    description:
      - With O(state=present), what C(rocket fetch) takes, C(name[:version][,label=value...]) (discovered),
        an C(https://) URL, or a path on the host (its signature is the same path with C(.asc) added unless
        O(signature) is given).
      - With O(state=absent), an image name C(name[:version][,label=value...]) or an image ID (a unique prefix
        of at least 8 hex digits, with or without C(sha512-)).
    type: str
    required: true
    aliases: [image]
  signature:
    description:
      - The detached signature (a path on the host or a URL) when it is not the image's own location with
        C(.asc) added.
    type: str
  pull_policy:
    description:
      - When to look for a newer image, as C(rocket fetch --pull-policy).
      - V(new) uses a matching stored image and downloads only when there is none; V(update) always asks the
        server (a download is skipped when the server says nothing changed); V(never) uses only the store
        and fails when the image is not there.
    type: str
    choices: [new, update, never]
    default: new
  state:
    description:
      - Whether the image should be in the store.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: appc.rocket.trust
  - module: appc.rocket.image_info
"""

EXAMPLES = r"""
- name: Fetch an image by name (discovery), verified by a key trusted for its prefix
  appc.rocket.image:
    name: example.com/app/web:1.4.2

- name: Import an unsigned image from a file on the host, for this task only
  appc.rocket.image:
    name: /srv/images/tools.aci
    insecure_options: [image]

- name: Look for a newer image of the same name
  appc.rocket.image:
    name: example.com/app/worker
    pull_policy: update

- name: Remove every stored version of an image no pod uses
  appc.rocket.image:
    name: example.com/app/old
    state: absent
"""

RETURN = r"""
image_id:
  description: The image's ID (V(sha512-) and 128 hex digits); in check mode, only when it is known already.
  returned: with state=present, when known
  type: str
  sample: sha512-7f9c1a...
image:
  description: The stored image (absent in check mode when it would be downloaded).
  returned: with state=present, when known
  type: dict
  contains:
    id:
      description: The image ID.
      type: str
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
dependencies:
  description: The image IDs of its dependencies that the fetch brought in or found.
  returned: with state=present, when not in check mode
  type: list
  elements: str
removed:
  description: The image IDs removed (or that would be, in check mode).
  returned: with state=absent
  type: list
  elements: str
"""

import os
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import (
    RocketError,
    StoreError,
    UsageError,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket.fetch import (
    Fetcher,
    FetchPlan,
    FetchResult,
    parse_request,
    plan_fetch,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket.lifecycle import images_in_use
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import (
    Host,
    argument_spec,
    fail,
    image_facts,
    lines_diff,
)


def _ids(result: FetchResult) -> List[str]:
    """The IDs a fetch brought in or found, dependencies first."""
    return [i for dependency in result.dependencies for i in _ids(dependency)] + [result.record.id]


def _imported(result: FetchResult) -> bool:
    return not result.already_present or any(_imported(dependency) for dependency in result.dependencies)


def present(module: AnsibleModule, host: Host) -> Dict[str, Any]:
    """Fetch the image unless the store already settles the request; in check mode only judge."""
    params = module.params
    if module.check_mode:
        request = parse_request(params["name"])
        if request.kind == "file" and not os.path.exists(request.text):
            # An earlier task of the same play (image_build) may make it: check mode ran none of them.
            module.warn(f"{request.text} does not exist (yet): check mode counts it as an image to import")
            plan = FetchPlan(None, asks_server=False)
        else:
            store = host.store_view()
            try:
                plan = plan_fetch(store, params["name"], pull_policy=params["pull_policy"])
            finally:
                if store is not None:
                    store.close()
        if plan.record is not None and plan.asks_server:
            module.warn(f"check mode does not ask the server whether {params['name']} has a newer image")
        result: Dict[str, Any] = {"changed": plan.record is None}
        if plan.record is not None:
            result.update(image_id=plan.record.id, image=image_facts(plan.record))
        before = [plan.record.id] if plan.record is not None else []
        after = before or [f"{params['name']} (would be fetched)"]
    else:
        store = host.store()
        try:
            fetcher = Fetcher(
                store,
                local_config=host.local_config,
                system_config=host.system_config,
                insecure=host.insecure,
                pull_policy=params["pull_policy"],
                signature=params["signature"],
            )
            fetched = fetcher.fetch(params["name"])
            record = store.index.get(fetched.record.id) or fetched.record  # with the trust just recorded
        finally:
            store.close()
        if fetched.decision is not None and fetched.decision.how != "signature":
            module.warn(f"{params['name']}: {fetched.decision.reason}")
        for warning in fetched.warnings:
            module.warn(f"{params['name']}: {warning}")
        changed = _imported(fetched)
        result = {
            "changed": changed,
            "image_id": record.id,
            "image": image_facts(record),
            "dependencies": _ids(fetched)[:-1],
        }
        after = [record.id]
        before = [] if not fetched.already_present else after
    if module._diff:
        result["diff"] = lines_diff(before, after, header=f"rocket image {params['name']}")
    return result


def absent(module: AnsibleModule, host: Host) -> Dict[str, Any]:
    """Remove the images the name or ID names, refusing those a pod uses."""
    reference = module.params["name"]
    if parse_request(reference).kind != "name":
        raise UsageError(
            f"state=absent takes an image name or ID, not a file or URL: {reference}",
            hint="give the image's name (name[:version]) or its ID",
        )
    store = host.store_view() if module.check_mode else host.existing_store()
    if store is None:
        return {"changed": False, "removed": []}
    try:
        records = store.matching(reference)
        used = images_in_use(host.data_dir)
        busy = [record for record in records if record.id in used]
        if busy:
            raise StoreError(
                f"image {busy[0].name} ({busy[0].id[:19]}) is used by a pod",
                hint="remove the pod first (appc.rocket.gc or rocket rm), then the image",
                image=busy[0].id,
            )
        if not module.check_mode:
            for record in records:
                store.remove(record.id)
    finally:
        store.close()
    removed = [record.id for record in records]
    result: Dict[str, Any] = {"changed": bool(removed), "removed": removed}
    if module._diff:
        result["diff"] = lines_diff(removed, [], header=f"rocket image {reference}")
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            name={"type": "str", "required": True, "aliases": ["image"]},
            signature={"type": "str"},
            pull_policy={"type": "str", "choices": ["new", "update", "never"], "default": "new"},
            state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        ),
        supports_check_mode=True,
    )
    try:
        host = Host.from_params(module.params)
        result = present(module, host) if module.params["state"] == "present" else absent(module, host)
    except RocketError as exc:
        fail(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
