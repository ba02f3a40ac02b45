#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: trust
short_description: Trust signing keys for image name prefixes, and keep the trust policy's deny-list
description:
  - Adds or removes the public keys that rocket trusts to sign images under a name prefix (or every name,
    O(root)), as C(rocket trust) does, in the local config's C(trustedkeys/) folder.
  - The key comes from a file on the host, a URL, or the prefix's discovery page
    (C(ac-discovery-pubkeys)); O(fingerprints) pins it. A revoked or expired key is refused.
  - Also adds or removes fingerprints on the deny-list of the trust policy (C(policy.json) in the local
    config). A denied key's signatures are refused everywhere, whatever the keystore says. Each change
    raises the policy's version past any this host has loaded.
  - Idempotent, it changes the host only when the keystore or the policy would change.
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
      - Writes nothing. A key given by URL is downloaded (read only) to learn its fingerprint,
        unless O(fingerprints) names it.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  prefix:
    description:
      - The image name prefix the keys are trusted for, matched on whole path components
        (C(example.com/app) covers C(example.com/app/web), never C(example.com/application)).
      - Mutually exclusive with O(root).
    type: str
  root:
    description:
      - Trust the keys for every image name.
    type: bool
    default: false
  key:
    description:
      - Where the key is, a path on the host or an C(https://) (or C(file://)) URL; a file may hold several keys.
      - Without it, O(state=present) discovers the keys of O(prefix) from its discovery page, and
        O(fingerprints) must pin them; O(state=absent) removes the keys O(fingerprints) names.
    type: str
  fingerprints:
    description:
      - Full fingerprints (40 or 64 hex digits, any case) of the keys.
      - With O(state=present), every key obtained must be one of these (a pin against substituted keys).
      - With O(state=absent), the keys to stop trusting.
    type: list
    elements: str
    aliases: [fingerprint]
  state:
    description:
      - Whether the keys (and the O(deny) entries) should be there or not.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), also stop trusting every other key of the same prefix (or root), and
        make the deny-list exactly O(deny) when O(deny) is given.
    type: bool
    default: false
  deny:
    description:
      - Fingerprints (primary keys or subkeys) for the trust policy's deny-list; O(state) says whether
        they should be on it.
      - Without O(prefix) or O(root), the task manages the deny-list only.
    type: list
    elements: str
notes:
  - A vendor key in O(system_config) is never deleted; removing it writes an empty file of the same name
    into O(local_config), which masks it.
seealso:
  - module: appc.rocket.image
"""

EXAMPLES = r"""
- name: Trust the publisher's key for its images, pinned
  appc.rocket.trust:
    prefix: example.com/app
    key: https://example.com/pubkeys.gpg
    fingerprints:
      - 2F5F1B0C6E4D8A9B0C1D2E3F4A5B6C7D8E9F0A1B

- name: Trust exactly the keys in a file for a prefix (others are removed)
  appc.rocket.trust:
    prefix: example.com
    key: /srv/keys/example.asc
    exclusive: true

- name: Stop trusting a key
  appc.rocket.trust:
    prefix: example.com/app
    fingerprints: [2F5F1B0C6E4D8A9B0C1D2E3F4A5B6C7D8E9F0A1B]
    state: absent

- name: Revoke a leaked key everywhere
  appc.rocket.trust:
    deny: [2F5F1B0C6E4D8A9B0C1D2E3F4A5B6C7D8E9F0A1B]
"""

RETURN = r"""
scope:
  description: The prefix the task managed keys for, V("") for root, null when it managed only the deny-list.
  returned: always
  type: str
  sample: example.com/app
fingerprints:
  description: The fingerprints trusted for the scope after the task (predicted in check mode).
  returned: always
  type: list
  elements: str
  sample: [2f5f1b0c6e4d8a9b0c1d2e3f4a5b6c7d8e9f0a1b]
added:
  description: Fingerprints whose key file was written (or would be in check mode).
  returned: always
  type: list
  elements: str
removed:
  description: Fingerprints no longer trusted for the scope (or that would not be in check mode).
  returned: always
  type: list
  elements: str
deny:
  description: The trust policy's deny-list after the task (predicted in check mode).
  returned: always
  type: list
  elements: str
policy_version:
  description: The version of the policy file written, when the deny-list changed.
  returned: when the deny-list changed
  type: int
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError, UsageError
from ansible_collections.appc.rocket.plugins.module_utils.rocket.keysource import (
    OfferedKey,
    check_offered_key,
    obtain_keys,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket.keystore import (
    Keystore,
    StoredKey,
    check_fingerprint,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket.paths import policy_path
from ansible_collections.appc.rocket.plugins.module_utils.rocket.policy import (
    RKT_POLICY,
    DenyListEdit,
    edit_deny_list,
    load_policy,
    parse_policy,
    write_policy,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import (
    Host,
    argument_spec,
    fail,
    lines_diff,
)


@dataclass
class KeyPlan:
    """The keystore changes of one task: keys to write and fingerprints to stop trusting in one scope."""

    scope: str
    before: Set[str]
    write: List[OfferedKey] = field(default_factory=list)
    remove: List[str] = field(default_factory=list)
    pinned_only: Set[str] = field(default_factory=set)  # check mode: keys known by their pin only

    @property
    def after(self) -> Set[str]:
        added = {info.fingerprint for _key, info in self.write} | self.pinned_only
        return (self.before | added) - set(self.remove)


def plan_keys(params: Dict[str, Any], host: Host, keystore: Keystore, *, check_mode: bool) -> KeyPlan:
    """Decide what the keystore needs for this task; reads only (a URL key may be downloaded)."""
    prefix, root = params["prefix"], params["root"]
    scope = "" if root else prefix
    current: Dict[str, StoredKey] = {key.fingerprint: key for key in keystore.list() if key.scope == scope}
    plan = KeyPlan(scope=scope, before=set(current))
    pins = [check_fingerprint(value) for value in params["fingerprints"] or []]
    location = params["key"]
    if params["state"] == "absent":
        if location is None and not pins:
            raise UsageError("say which keys to remove", hint="give fingerprints or key")
        doomed = set(pins)
        if location is not None:
            doomed |= {info.fingerprint for _key, info in _obtain(location, prefix, host)}
        plan.remove = sorted(doomed & set(current))
        return plan
    if location is None and root:
        raise UsageError("a root key cannot be discovered", hint="give key, a key file or URL")
    if location is None and not pins:
        raise UsageError(
            f"the keys discovered for {prefix} must be pinned",
            hint="give fingerprints (see the publisher's documentation), or give the key file or URL",
        )
    remote = location is None or location.startswith(("https://", "http://"))
    # A key file an earlier task would have copied (check mode ran none of them) is judged by its pins too.
    not_yet = (
        location is not None and not remote and not location.startswith("file://") and not os.path.exists(location)
    )
    if check_mode and (remote or not_yet) and pins:
        # The pins say which keys the download would give: nothing to fetch to know what changes.
        plan.pinned_only = set(pins) - set(current)
        wanted = set(pins)
    else:
        offered = _obtain(location, prefix, host)
        for _data, info in offered:
            check_offered_key(info, pinned=pins or None)
        plan.write = [(data, info) for data, info in offered if _differs(current.get(info.fingerprint), data)]
        wanted = {info.fingerprint for _key, info in offered}
    if params["exclusive"]:
        plan.remove = sorted(set(current) - wanted)
    return plan


def _obtain(location: Optional[str], prefix: Optional[str], host: Host) -> List[OfferedKey]:
    return obtain_keys(
        location,
        prefix=prefix,
        local_config=host.local_config,
        system_config=host.system_config,
        insecure=host.insecure,
    )


def _differs(stored: Optional[StoredKey], data: bytes) -> bool:
    """A key needs writing if it is not trusted in the scope yet, or the publisher's copy changed
    (a new expiry date, a new subkey) and so differs from the stored bytes."""
    return stored is None or stored.data != data


def plan_deny(params: Dict[str, Any], host: Host) -> Optional[DenyListEdit]:
    """The new policy file if the deny-list must change; reads only."""
    deny = params["deny"]
    if deny is None:
        return None
    common = {"local_config": host.local_config, "system_config": host.system_config, "state_dir": host.data_dir}
    if params["state"] == "absent":
        return edit_deny_list(remove=deny, **common)
    if params["exclusive"]:
        return edit_deny_list(exact=deny, **common)
    return edit_deny_list(add=deny, **common)


def current_deny(host: Host) -> List[str]:
    """The deny-list in force, read without the rollback guard's bookkeeping (which writes)."""
    for config in (host.local_config, host.system_config):
        path = policy_path(config)
        if path.is_file():
            return sorted(parse_policy(path.read_bytes(), source=path).deny)
    return sorted(RKT_POLICY.deny)


def ensure(module: AnsibleModule) -> Dict[str, Any]:
    """Plan the keystore and policy changes, apply them unless in check mode, and describe the outcome."""
    params = module.params
    if params["prefix"] is not None and params["root"]:
        raise UsageError("give prefix or root, not both", hint="a key is trusted for one prefix, or for every name")
    if params["exclusive"] and params["state"] == "absent":
        raise UsageError("exclusive applies to state=present", hint="drop exclusive, or use state=present")
    manages_keys = params["prefix"] is not None or params["root"]
    if not manages_keys and params["deny"] is None:
        raise UsageError("say what to trust", hint="give prefix or root (with key or fingerprints), or deny")
    host = Host.from_params(params)
    keystore = Keystore(local_config=host.local_config, system_config=host.system_config)
    plan = plan_keys(params, host, keystore, check_mode=module.check_mode) if manages_keys else None
    deny_before = current_deny(host)
    deny_edit = plan_deny(params, host)

    if not module.check_mode:
        if plan is not None:
            kwargs = {"root": True} if plan.scope == "" else {"prefix": plan.scope}
            for data, _info in plan.write:
                keystore.add(data, **kwargs)
            for fingerprint in plan.remove:
                keystore.remove(fingerprint, **kwargs)
        if deny_edit is not None:
            write_policy(deny_edit)
            # Load it once now, so the rollback guard records the new version on this host at once.
            load_policy(local_config=host.local_config, system_config=host.system_config, state_dir=host.data_dir)

    deny_after = sorted(deny_edit.after) if deny_edit is not None else deny_before
    result: Dict[str, Any] = {
        "changed": bool(plan and (plan.write or plan.remove or plan.pinned_only)) or deny_edit is not None,
        "scope": plan.scope if plan is not None else None,
        "fingerprints": sorted(plan.after) if plan is not None else [],
        "added": sorted({info.fingerprint for _key, info in plan.write} | plan.pinned_only) if plan else [],
        "removed": list(plan.remove) if plan else [],
        "deny": deny_after,
    }
    if deny_edit is not None:
        result["policy_version"] = parse_policy(deny_edit.data, source=deny_edit.path).version
    if module._diff:
        label = ("root" if plan.scope == "" else f"prefix {plan.scope}") if plan is not None else ""
        before = [f"trusted {label}: {fpr}" for fpr in sorted(plan.before)] if plan else []
        after = [f"trusted {label}: {fpr}" for fpr in result["fingerprints"]]
        before += [f"denied: {fpr}" for fpr in deny_before]
        after += [f"denied: {fpr}" for fpr in deny_after]
        result["diff"] = lines_diff(before, after, header=f"rocket trust ({host.local_config})")
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            prefix={"type": "str"},
            root={"type": "bool", "default": False},
            key={"type": "str", "no_log": False},
            fingerprints={"type": "list", "elements": "str", "aliases": ["fingerprint"]},
            state={"type": "str", "choices": ["present", "absent"], "default": "present"},
            exclusive={"type": "bool", "default": False},
            deny={"type": "list", "elements": "str"},
        ),
        supports_check_mode=True,
    )
    try:
        result = ensure(module)
    except RocketError as exc:
        fail(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
