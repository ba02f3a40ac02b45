"""Copy or merge a folder tree with its owners, modes, mtimes, xattrs, symlinks and hard links.

Used to render images (layers merged in order, later ones winning) and to give operators a copy of an
image (`image extract`, `image render`). Symlinks are copied as symlinks and never followed; an existing
symlink at a destination path is replaced, never written through.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import Dict, List, Tuple

from .fileio import remove_tree


def merge_tree(source: str, destination: str, *, hardlink: bool) -> None:
    """Lay `source` over `destination`: entries of `source` replace those at the same path.

    With hardlink=True regular files are linked, not copied (the render cache is only ever a
    read-only lower layer); otherwise they are copied, keeping hard links within `source`.
    """
    is_root = os.geteuid() == 0
    copied_inodes: Dict[Tuple[int, int], str] = {}
    folders: List[Tuple[str, os.stat_result, str]] = []
    os.makedirs(destination, exist_ok=True)
    folders.append((destination, os.lstat(source), source))
    pending = [(source, destination)]
    while pending:
        src_dir, dst_dir = pending.pop()
        with os.scandir(src_dir) as entries:
            for entry in entries:
                src = entry.path
                dst = os.path.join(dst_dir, entry.name)
                info = entry.stat(follow_symlinks=False)
                existing = _lstat_or_none(dst)
                if stat.S_ISDIR(info.st_mode):
                    if existing is None or not stat.S_ISDIR(existing.st_mode):
                        if existing is not None:
                            remove_tree(dst)
                        os.mkdir(dst, 0o700)
                    folders.append((dst, info, src))
                    pending.append((src, dst))
                    continue
                if existing is not None:
                    remove_tree(dst)
                if stat.S_ISLNK(info.st_mode):
                    os.symlink(os.readlink(src), dst)
                    if is_root:
                        os.lchown(dst, info.st_uid, info.st_gid)
                    os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
                elif stat.S_ISREG(info.st_mode):
                    _place_file(src, dst, info, hardlink=hardlink, copied=copied_inodes, is_root=is_root)
                # Sockets, devices and FIFOs are never in an image tree (extraction skips them).
    for path, info, src in reversed(folders):
        _copy_meta(src, path, info, is_root=is_root)


def _lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _place_file(
    src: str, dst: str, info: os.stat_result, *, hardlink: bool, copied: Dict[Tuple[int, int], str], is_root: bool
) -> None:
    if hardlink:
        try:
            os.link(src, dst, follow_symlinks=False)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    key = (info.st_dev, info.st_ino)
    if info.st_nlink > 1 and key in copied:
        os.link(copied[key], dst)
        return
    shutil.copyfile(src, dst, follow_symlinks=False)
    _copy_meta(src, dst, info, is_root=is_root)
    copied[key] = dst


def _copy_meta(src: str, dst: str, info: os.stat_result, *, is_root: bool) -> None:
    if is_root:
        os.chown(dst, info.st_uid, info.st_gid, follow_symlinks=False)
    os.chmod(dst, stat.S_IMODE(info.st_mode))
    try:
        for name in os.listxattr(src, follow_symlinks=False):
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EPERM):
            raise
    os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


OVERLAY_OPAQUE = "trusted.overlay.opaque"


def apply_overlay_upper(upper: str, merged: str) -> None:
    """Lay an overlayfs upper folder over a copy of its lower one, as overlayfs shows them together.

    A character device 0:0 in the upper folder is a whiteout (the path was deleted); a folder marked
    opaque hides everything below it in the lower layer.
    """
    for folder, dirs, files in os.walk(upper):
        relative = os.path.relpath(folder, upper)
        target_folder = os.path.normpath(os.path.join(merged, relative))
        for name in dirs + files:
            source = os.path.join(folder, name)
            info = os.lstat(source)
            target = os.path.join(target_folder, name)
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                if os.path.lexists(target):
                    remove_tree(target)
            elif stat.S_ISDIR(info.st_mode) and _is_opaque(source) and os.path.lexists(target):
                remove_tree(target)
    # Whiteouts are character devices, which merge_tree does not copy: only the real changes remain.
    merge_tree(upper, merged, hardlink=False)


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False
