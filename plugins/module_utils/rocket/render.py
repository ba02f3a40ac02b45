"""Rendering: an image laid over its dependencies, as the specification orders them.

Dependencies are rendered depth first in list order, the image itself last; later layers replace
earlier ones. `pathWhitelist`, when non-empty, is the complete set of non-folder paths kept. An image
with no dependencies and no whitelist is its own rendered tree, so nothing is copied for it. Other
renders are built in a work folder with hard links into the store, synced, and renamed to
`cas/rendered/<key>/`, where the key hashes the ordered layer IDs: a render is complete iff it exists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ImageError, NotFoundError
from .fileio import fsync_dir, remove_tree, syncfs
from .locks import FileLock

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path

if TYPE_CHECKING:
    from typing import Dict, List, Sequence, Set

    from .store import Store

MAX_DEPTH = 64


def _resolve_dependency(store: Store, dependency: Dict[str, object], *, parent: str) -> str:
    name = str(dependency["imageName"])
    wanted_id = dependency.get("imageID")
    if isinstance(wanted_id, str) and store.index.get(wanted_id) is not None:
        return wanted_id
    if isinstance(wanted_id, str):
        raise NotFoundError(
            f"dependency {name} ({wanted_id[:19]}…) of image {parent[:19]}… is not in the store",
            hint=f"fetch {name} first",
            reference=name,
        )
    labels = {str(item["name"]): str(item["value"]) for item in dependency.get("labels") or []}  # type: ignore[attr-defined]
    for record in store.index.by_name(name):
        if all(record.labels.get(key) == value for key, value in labels.items()):
            return record.id
    raise NotFoundError(
        f"dependency {name} of image {parent[:19]}… is not in the store",
        hint=f"fetch {name} first",
        reference=name,
    )


def layer_ids(store: Store, image_id: str) -> List[str]:
    """The render order: each dependency's own layers first (depth first, in order), then the image."""
    order: List[str] = []

    def visit(current: str, stack: List[str]) -> None:
        if current in stack or len(stack) > MAX_DEPTH:
            chain = " -> ".join(s[:19] for s in stack + [current])
            raise ImageError(f"image dependencies form a cycle or are too deep: {chain}", rule="dependencies")
        manifest = store.manifest(current)
        for dependency in manifest.get("dependencies") or []:  # type: ignore[attr-defined]
            visit(_resolve_dependency(store, dependency, parent=current), stack + [current])
        if current not in order:
            order.append(current)

    visit(image_id, [])
    return order


def render_key(layers: Sequence[str]) -> str:
    import hashlib  # here and merge_tree below: an image without dependencies runs from its own tree

    return hashlib.sha256("\n".join(layers).encode()).hexdigest()


def rendered_rootfs(store: Store, image_id: str) -> Path:
    """The root filesystem of an image with its dependencies, rendering it once if needed."""
    layers = layer_ids(store, image_id)
    manifest = store.manifest(image_id)
    whitelist = manifest.get("pathWhitelist") or []
    if len(layers) == 1 and not whitelist:
        return store.paths.image_rootfs(image_id)
    key = render_key(layers)
    target = store.paths.rendered_dir(key)
    with FileLock(store.paths.locks / f"render-{key}.lock"):
        if not target.is_dir():
            _render(store, layers, whitelist, target)  # type: ignore[arg-type]
    for layer in layers:
        store.touch(layer)
    return target / "rootfs"


def _render(store: Store, layers: List[str], whitelist: List[str], target: Path) -> None:
    from .store import WorkDir
    from .treecopy import merge_tree

    work = WorkDir(store.paths)
    try:
        rootfs = work.path / "rootfs"
        for layer in layers:
            merge_tree(str(store.paths.image_rootfs(layer)), str(rootfs), hardlink=True)
        if whitelist:
            apply_whitelist(str(rootfs), whitelist)
        (work.path / "layers.json").write_text(json.dumps(layers))
        syncfs(work.path)
        os.rename(work.path, target)
        fsync_dir(target.parent)
        work.close()
    except BaseException:
        work.discard()
        raise


def apply_whitelist(rootfs: str, whitelist: List[str]) -> None:
    """Remove every non-folder path that the whitelist does not name."""
    keep: Set[str] = {os.path.normpath("/" + path.lstrip("/")) for path in whitelist}
    for folder, dirs, files in os.walk(rootfs):
        relative = "/" + os.path.relpath(folder, rootfs) if folder != rootfs else ""
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.normpath(f"{relative}/{name}")
            if path not in keep:
                os.unlink(os.path.join(folder, name))


def remove_renders_using(store: Store, removed: Set[str]) -> None:
    """Delete renders that use any of `removed` or any image no longer in the store."""
    present = set(store.index.ids())
    for entry in os.scandir(store.paths.rendered):
        try:
            layers = json.loads(Path(entry.path, "layers.json").read_text())
        except (OSError, ValueError):
            layers = None
        if layers is None or any(layer in removed or layer not in present for layer in layers):
            lock = FileLock(store.paths.locks / f"render-{entry.name}.lock")
            if lock.acquire(blocking=False):
                try:
                    remove_tree(entry.path)
                finally:
                    lock.release()
