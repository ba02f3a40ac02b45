"""The engine installed on a host, content-addressed: `<base>/<digest>/rocket/`.

A module runs from files Ansible deletes when it returns, so a pod supervisor it starts must run from
somewhere that stays: the module copies the engine it was shipped with to `/usr/lib/rocket/engine/
<digest>/` first (once per engine version; a folder is complete or absent, made under a temporary name
and renamed), and starts the supervisor from there. Running pods keep their engine; a new version goes
beside the old one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import StoreError, UsageError
from .ship import every_module

DEFAULT_BASE = Path("/usr/lib/rocket/engine")
SHIPPED = every_module  # named so that Ansible packs the whole engine into a module's payload (ship.py)
PACKAGE = Path(__file__).resolve().parent


def _zip_of(package: Path) -> Optional[Tuple[Path, str]]:
    """(archive, member prefix) when the package is imported from a zip, as in Ansible's AnsiballZ payload."""
    for parent in package.parents:
        if parent.is_file() and zipfile.is_zipfile(parent):
            return parent, str(package.relative_to(parent)).replace(os.sep, "/") + "/"
    return None


def engine_files(package: Path = PACKAGE) -> List[Tuple[str, bytes]]:
    """Every Python file of the engine package with its content, by path relative to it, in a stable order."""
    found: List[Tuple[str, bytes]] = []
    archive = _zip_of(package)
    if archive is not None:
        with zipfile.ZipFile(archive[0]) as payload:
            for member in sorted(payload.namelist()):
                if member.startswith(archive[1]) and member.endswith(".py"):
                    found.append((member[len(archive[1]) :], payload.read(member)))
        return found
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                found.append((str(path.relative_to(package)), path.read_bytes()))
    return found


def engine_digest(files: Optional[List[Tuple[str, bytes]]] = None) -> str:
    digest = hashlib.sha256()
    for relative, data in engine_files() if files is None else files:
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def install_engine(base: Path = DEFAULT_BASE, package: Path = PACKAGE) -> Tuple[str, bool]:
    """The folder to put on a supervisor's sys.path (holding `rocket/`), and whether it was new."""
    files = engine_files(package)
    if not any(relative == "__init__.py" for relative, _data in files):
        raise StoreError(f"cannot find the engine's files in {package}", hint="reinstall the collection")
    target = base / engine_digest(files)[:32]
    if (target / "rocket" / "__init__.py").exists():
        return str(target), False
    base.mkdir(parents=True, exist_ok=True, mode=0o755)
    scratch = Path(tempfile.mkdtemp(prefix=".install-", dir=base))
    try:
        for relative, data in files:
            destination = scratch / "rocket" / relative
            destination.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            destination.write_bytes(data)
            os.chmod(destination, 0o644)
        os.chmod(scratch, 0o755)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "rocket" / "__init__.py").exists():
                raise
            return str(target), False  # another module installed the same engine meanwhile
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return str(target), True


# The `rocket` command of a host: a Python script, so that starting it costs one exec (a /bin/sh
# wrapper cost ~0.5 ms more). `-IS` (one argument: the kernel passes a shebang's options as one word):
# isolated, no site, so only the engine copy and the standard library are importable and no .pth runs.
LAUNCHER = """#!{python} -IS
# The rocket command line, run from the engine copy that appc.rocket.engine installed.
import sys

sys.path.insert(0, {root!r})
from rocket.cli.entry import main

main()
"""


def launcher_script(python: str, root: str) -> str:
    """The text of the `rocket` command that runs the engine copy in `root` with `python`."""
    if not os.path.isabs(python) or any(character.isspace() for character in python):
        raise UsageError(
            f"cannot use {python!r} as the launcher's interpreter: a #! line needs an absolute path without spaces",
            hint="give the interpreter's absolute path",
        )
    return LAUNCHER.format(python=python, root=root)
