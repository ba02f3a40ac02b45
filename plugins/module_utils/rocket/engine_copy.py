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
from pathlib import Path
from typing import List, Tuple

DEFAULT_BASE = Path("/usr/lib/rocket/engine")
PACKAGE = Path(__file__).resolve().parent


def engine_files(package: Path = PACKAGE) -> List[Tuple[str, Path]]:
    """Every Python file of the engine package, by path relative to it, in a stable order."""
    found = []
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                found.append((str(path.relative_to(package)), path))
    return found


def engine_digest(package: Path = PACKAGE) -> str:
    digest = hashlib.sha256()
    for relative, path in engine_files(package):
        data = path.read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def install_engine(base: Path = DEFAULT_BASE, package: Path = PACKAGE) -> Tuple[str, bool]:
    """The folder to put on a supervisor's sys.path (holding `rocket/`), and whether it was new."""
    target = base / engine_digest(package)[:32]
    if (target / "rocket" / "__init__.py").exists():
        return str(target), False
    base.mkdir(parents=True, exist_ok=True, mode=0o755)
    scratch = Path(tempfile.mkdtemp(prefix=".install-", dir=base))
    try:
        for relative, path in engine_files(package):
            destination = scratch / "rocket" / relative
            destination.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            shutil.copyfile(path, destination)
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
