"""The engine copy is whole: ship.py names every module, so Ansible's payload holds all of them."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

from rocket.engine_copy import PACKAGE, engine_digest, engine_files, launcher_script
from rocket.errors import UsageError


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


def test_launcher_runs_the_engine_isolated(tmp_path: Path) -> None:
    """The launcher is one exec of `python -IS`: PYTHONPATH and the user's site are ignored, so a
    `rocket` package planted there cannot take the engine's place."""
    planted = tmp_path / "planted" / "rocket"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("raise SystemExit('the planted rocket ran')\n")
    launcher = tmp_path / "rocket"
    launcher.write_text(launcher_script("/usr/bin/python3", str(PACKAGE.parent)))
    launcher.chmod(0o755)
    assert launcher.read_text().startswith("#!/usr/bin/python3 -IS\n")
    env = dict(os.environ, PYTHONPATH=str(planted.parent))
    done = subprocess.run([str(launcher), "version"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "rocket" in done.stdout and "planted" not in done.stderr


@pytest.mark.parametrize("python", ["python3", "/opt/my python/bin/python3", "/usr/bin/python3\n"])
def test_launcher_refuses_an_interpreter_a_shebang_cannot_name(python: str) -> None:
    with pytest.raises(UsageError) as caught:
        launcher_script(python, "/usr/lib/rocket/engine/x")
    assert repr(python) in caught.value.message


def test_launcher_quotes_the_engine_folder(tmp_path: Path) -> None:
    """The folder is a Python literal in the script: quotes or backslashes in it cannot change the code."""
    folder = tmp_path / 'it\'s \\ "odd"'
    folder.mkdir()
    (folder / "rocket").symlink_to(PACKAGE)
    launcher = tmp_path / "rocket"
    launcher.write_text(launcher_script("/usr/bin/python3", str(folder)))
    launcher.chmod(0o755)
    done = subprocess.run([str(launcher), "version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
