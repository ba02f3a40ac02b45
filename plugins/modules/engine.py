#!/usr/bin/python
# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine
short_description: Install the rocket engine this collection ships, and the rocket command that runs it
description:
  - Copies the engine shipped with this collection to O(engine_dir)C(/<digest>/), content-addressed (a
    version is installed once, beside the others, complete or not at all), and writes O(launcher), a
    small Python script that runs the C(rocket) command line from that copy with O(python) in isolated
    mode without C(site) (C(-IS)), so that only the copy and the standard library are importable.
  - Running pods keep the engine copy they started from; the pod modules install the same copy themselves
    before they start a pod, so this module is for the command line and the boot service.
version_added: 0.1.0
author:
  - rocket developers (!UNKNOWN)
extends_documentation_fragment:
  - appc.rocket.common.attributes
attributes:
  check_mode:
    support: full
    details:
      - Says whether the copy or the launcher would change, and writes nothing.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  engine_dir:
    description: Where the engine copies live.
    type: path
    default: /usr/lib/rocket/engine
  launcher:
    description: The path of the C(rocket) command to write.
    type: path
    default: /usr/bin/rocket
  python:
    description:
      - The interpreter the command runs with, named on the script's C(#!) line.
      - An absolute path without spaces.
    type: path
    default: /usr/bin/python3
"""

EXAMPLES = r"""
- name: The engine and /usr/bin/rocket
  appc.rocket.engine:
"""

RETURN = r"""
engine_root:
  description: The folder holding the installed C(rocket) package.
  returned: always
  type: str
  sample: /usr/lib/rocket/engine/321fbb883738f1f89d63c761658eaca8
digest:
  description: The engine's content digest (the folder's name is its first 32 hex digits).
  returned: always
  type: str
"""

import os
from pathlib import Path
from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.appc.rocket.plugins.module_utils.rocket.engine_copy import (
    engine_digest,
    engine_files,
    install_engine,
    launcher_script,
)
from ansible_collections.appc.rocket.plugins.module_utils.rocket.errors import RocketError
from ansible_collections.appc.rocket.plugins.module_utils.rocket_module import fail


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "engine_dir": {"type": "path", "default": "/usr/lib/rocket/engine"},
            "launcher": {"type": "path", "default": "/usr/bin/rocket"},
            "python": {"type": "path", "default": "/usr/bin/python3"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        digest = engine_digest(engine_files())
        root = str(Path(params["engine_dir"]) / digest[:32])
        copy_missing = not (Path(root) / "rocket" / "__init__.py").exists()
        wanted = launcher_script(params["python"], root)
        if copy_missing and not module.check_mode:
            root, _new = install_engine(Path(params["engine_dir"]))
    except (RocketError, OSError) as exc:
        if isinstance(exc, RocketError):
            fail(module, exc)
        module.fail_json(msg=f"cannot install the engine under {params['engine_dir']}: {exc}")
    launcher = Path(params["launcher"])
    current = launcher.read_text() if launcher.is_file() else ""
    launcher_changed = current != wanted
    if launcher_changed and not module.check_mode:
        temporary = launcher.with_name(f".{launcher.name}.tmp")
        temporary.write_text(wanted)
        os.chmod(temporary, 0o755)
        os.replace(temporary, launcher)
    result: Dict[str, Any] = {
        "changed": copy_missing or launcher_changed,
        "engine_root": root,
        "digest": digest,
    }
    if module._diff:
        result["diff"] = {
            "before": current,
            "after": wanted,
            "before_header": str(launcher),
            "after_header": str(launcher),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
