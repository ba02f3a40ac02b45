"""The engine copy is whole: ship.py names every module, so Ansible's payload holds all of them."""

from __future__ import annotations

import ast
from pathlib import Path

from rocket.engine_copy import PACKAGE, engine_digest, engine_files


def test_ship_names_every_module() -> None:
    tree = ast.parse((PACKAGE / "ship.py").read_text())
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = (node.module or "").replace(".", "/")
            for alias in node.names:
                named.add(f"{base}/{alias.name}.py" if base else f"{alias.name}.py")
    wanted = {relative for relative, _data in engine_files() if not relative.endswith("__init__.py")}
    wanted.discard("ship.py")
    assert wanted - named == set(), "add these to rocket/ship.py"


def test_digest_is_stable_and_content_bound(tmp_path: Path) -> None:
    files = engine_files()
    assert engine_digest(files) == engine_digest()
    changed = [(relative, data + b"#") if relative == "names.py" else (relative, data) for relative, data in files]
    assert engine_digest(changed) != engine_digest(files)
