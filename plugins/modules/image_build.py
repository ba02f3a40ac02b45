#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_build
short_description: Build an appc image archive (ACI) from a folder, reproducibly, and sign it with gpg
description:
  - Builds O(dest) from O(path) (a folder holding C(manifest) and C(rootfs/)) as C(rocket image build)
    does. The build is reproducible (sorted entries, numeric owners, mtimes clamped to
    O(source_date_epoch)), so the same folder gives the same image ID.
  - Rebuilds only when the image ID of the folder differs from that of the existing O(dest) (or its
    compression differs); the folder is hashed first, without writing anything.
  - With O(key), writes an armored detached signature (O(signature), by default O(dest) with C(.asc)
    added) made by C(gpg --batch --armor --detach-sign) with that key from O(gpg_home). It signs again
    only when the archive was rebuilt, or the signature is missing or is not a good signature of
    O(dest) by that key.
version_added: 0.1.0
author:
  - rocket developers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written; the folder and O(dest) are read to compare image IDs, and an existing
        signature is checked with C(gpgv).
  diff_mode:
    support: full
  platform:
    platforms: posix
extends_documentation_fragment:
  - appc.rocket.common.attributes
options:
  path:
    description:
      - The folder to build from, holding the image manifest as C(manifest) and the files as C(rootfs/).
    type: path
    required: true
  dest:
    description:
      - The archive to write (usually C(NAME-VERSION-OS-ARCH.aci)); replaced atomically.
    type: path
    required: true
  compression:
    description:
      - V(gzip) or V(none); the image ID is the same either way (it is the hash of the uncompressed tar).
    type: str
    choices: [gzip, none]
    default: gzip
  source_date_epoch:
    description:
      - Clamp the files' modification times to this many seconds since the epoch (the reproducible-builds
        convention); without it the files' own times are kept.
    type: int
  key:
    description:
      - The signing key, as gpg selects it (a fingerprint, a key ID or a user ID). Without it nothing is signed.
      - The key must sign without a passphrase prompt (batch mode).
    type: str
  gpg_home:
    description:
      - The GnuPG home holding the signing key (C(gpg --homedir)); the user's default home if not given.
    type: path
  signature:
    description:
      - Where the signature goes; O(dest) with C(.asc) added if not given.
    type: path
requirements:
  - gnupg (C(gpg), C(gpgv)) on the host when O(key) is given.
seealso:
  - module: appc.rocket.image
"""

EXAMPLES = r"""
- name: Build an image reproducibly
  appc.rocket.image_build:
    path: /srv/build/web
    dest: /srv/www/images/example.com/web-1.0.0-linux-amd64.aci
    source_date_epoch: 1700000000

- name: Build and sign it with the publisher's key
  appc.rocket.image_build:
    path: /srv/build/web
    dest: /srv/www/images/example.com/web-1.0.0-linux-amd64.aci
    source_date_epoch: 1700000000
    gpg_home: /srv/signing/gnupg
    key: images@example.com
"""

RETURN = r"""
image_id:
  description: The image ID of the folder's build (what O(dest) holds after the task, or would in check mode).
  returned: always
  type: str
  sample: sha512-2c3b...
name:
  description: The image name from the manifest.
  returned: always
  type: str
  sample: example.com/web
dest:
  description: The archive's path.
  returned: always
  type: str
built:
  description: Whether the archive was (or in check mode would be) written.
  returned: always
  type: bool
signature:
  description: The signature's path.
  returned: when O(key) is given
  type: str
signed:
  description: Whether the signature was (or in check mode would be) written.
  returned: when O(key) is given
  type: bool
"""

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.build import build_id, build_image
from ansible_collections.appc.rocket.plugins.module_utils.rocket.compression import archive_image_id
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import ImageError, RocketError, UsageError
from ansible_collections.appc.rocket.plugins.module_utils.rocket.sign import (
    public_keys,
    sign_detached,
    signed_by,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import fail


def existing_archive(dest: Path) -> Optional[Tuple[str, str]]:
    """(image ID, compression) of the archive at `dest`, None if there is none or it is not readable as one."""
    if not dest.is_file():
        return None
    try:
        return archive_image_id(dest)
    except ImageError:
        return None  # a damaged or foreign file: the build replaces it


def ensure(module: AnsibleModule) -> Dict[str, Any]:
    """Build when the image ID (or compression) would differ, sign when needed; only judge in check mode."""
    params = module.params
    source, dest = Path(params["path"]), Path(params["dest"])
    if not dest.parent.is_dir():
        raise UsageError(
            f"cannot write {dest}: the folder {dest.parent} does not exist",
            hint="create it first (ansible.builtin.file with state=directory)",
        )
    wanted = build_id(source, source_date_epoch=params["source_date_epoch"])
    name = str(json.loads((source / "manifest").read_bytes()).get("name", ""))
    before = existing_archive(dest)
    build = before != (wanted, params["compression"])
    result: Dict[str, Any] = {"image_id": wanted, "name": name, "dest": str(dest), "built": build}
    if build and not module.check_mode:
        built = build_image(
            source,
            dest,
            compression=params["compression"],
            source_date_epoch=params["source_date_epoch"],
            overwrite=True,
        )
        result["image_id"] = built.image_id
        for warning in built.warnings:
            module.warn(f"{source}: {warning}")

    sign = False
    if params["key"] is not None:
        signature = Path(params["signature"] or f"{dest}.asc")
        keys = public_keys(params["key"], gpg_home=params["gpg_home"])
        # A rebuilt archive needs a new signature; otherwise keep one that still verifies with the key.
        sign = build or not signed_by(dest, signature, keys)
        if sign and not module.check_mode:
            sign_detached(dest, signature, key=params["key"], gpg_home=params["gpg_home"])
        result.update(signature=str(signature), signed=sign)

    result["changed"] = build or sign
    if module._diff:
        result["diff"] = {
            "before": {"image_id": before[0] if before else None, "compression": before[1] if before else None},
            "after": {"image_id": result["image_id"], "compression": params["compression"]},
            "before_header": str(dest),
            "after_header": str(dest),
        }
        if params["key"] is not None:
            result["diff"]["before"]["signed_by_key"] = not sign
            result["diff"]["after"]["signed_by_key"] = True
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "compression": {"type": "str", "choices": ["gzip", "none"], "default": "gzip"},
            "source_date_epoch": {"type": "int"},
            "key": {"type": "str", "no_log": False},
            "gpg_home": {"type": "path"},
            "signature": {"type": "path"},
        },
        supports_check_mode=True,
    )
    try:
        result = ensure(module)
    except RocketError as exc:
        fail(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
