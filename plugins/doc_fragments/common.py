# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)
"""The options and attributes every appc.rocket module shares."""

from __future__ import annotations


class ModuleDocFragment:
    """Documentation fragments: `appc.rocket.common` (options) and `appc.rocket.common.attributes`."""

    DOCUMENTATION = r"""
options:
  dir:
    description:
      - The data directory of rocket on the host (images, pods, audit log), as C(rocket --dir).
    type: path
    default: /var/lib/rocket
  local_config:
    description:
      - The operator's configuration folder (trusted keys, C(policy.json), C(certs.d/), C(auth.d/)),
        as C(rocket --local-config).
    type: path
    default: /etc/rocket
  system_config:
    description:
      - The vendor configuration folder, of the same shape as O(local_config), which wins over it;
        as C(rocket --system-config).
    type: path
    default: /usr/lib/rocket
  insecure_options:
    description:
      - Checks to skip for this task only, as C(rocket --insecure-options).
      - V(image) accepts an image without a trusted signature; V(tls) skips certificate checks;
        V(http) allows plain HTTP; V(all-fetch) is all three. The trust policy's C(reject) scopes and its
        deny-list still apply.
    type: list
    elements: str
    default: []
requirements:
  - Python 3.9 or later on the host.
  - gnupg (C(gpg) and C(gpgv)) on the host.
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the host.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode) when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
"""

    INFO_MODULE = r"""
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
"""
