"""Test helpers: image manifests and ACIs built from small dicts of files, and tree listings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional

from rocket.build import build_image

ImageMaker = Callable[..., Path]


def image_manifest(name: str, *, labels: Optional[Dict[str, str]] = None, **extra: object) -> Dict[str, object]:
    all_labels = {"os": "linux", "arch": "amd64"}
    all_labels.update(labels or {})
    manifest: Dict[str, object] = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [{"name": k, "value": v} for k, v in all_labels.items()],
        "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
    }
    manifest.update(extra)
    return manifest


def image_maker(tmp_path: Path) -> ImageMaker:
    """A function that builds an ACI from a dict of rootfs paths: str/bytes = file content,
    ('link', target) = symlink, ('dir',) = empty folder."""
    counter = iter(range(10_000))

    def make(
        name: str = "example.com/test",
        files: Optional[Dict[str, object]] = None,
        *,
        labels: Optional[Dict[str, str]] = None,
        compression: str = "none",
        **extra: object,
    ) -> Path:
        folder = tmp_path / f"src{next(counter)}"
        rootfs = folder / "rootfs"
        rootfs.mkdir(parents=True)
        for relative, content in (files or {}).items():
            path = rootfs / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, tuple) and content[0] == "link":
                os.symlink(content[1], path)
            elif isinstance(content, tuple) and content[0] == "dir":
                path.mkdir(exist_ok=True)
            else:
                path.write_bytes(content if isinstance(content, bytes) else str(content).encode())
        (folder / "manifest").write_text(json.dumps(image_manifest(name, labels=labels, **extra)))
        output = tmp_path / f"{folder.name}.aci"
        build_image(folder, output, compression=compression)
        return output

    return make


def tree(root: Path) -> List[str]:
    """Every path below root, relative, sorted; symlinks shown with their target."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            relative = str(path.relative_to(root))
            found.append(f"{relative} -> {os.readlink(path)}" if path.is_symlink() else relative)
    return sorted(found)
