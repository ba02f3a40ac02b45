"""Rendering an image over its dependencies: order, overwrites, symlink replacement, pathWhitelist."""

from __future__ import annotations

import os

import pytest

from images import ImageMaker, tree
from rocket.errors import NotFoundError
from rocket.render import layer_ids, rendered_rootfs
from rocket.store import Store


def dep(name: str, **labels: str) -> dict:
    entry: dict = {"imageName": name}
    if labels:
        entry["labels"] = [{"name": k, "value": v} for k, v in labels.items()]
    return entry


def test_image_without_dependencies_is_its_own_render(store: Store, make_image: ImageMaker) -> None:
    record = store.import_archive(make_image(files={"a": "1"})).record
    assert rendered_rootfs(store, record.id) == store.paths.image_rootfs(record.id)
    assert os.listdir(store.paths.rendered) == []


def test_depth_first_order_later_layers_win(store: Store, make_image: ImageMaker) -> None:
    base = store.import_archive(make_image("example.com/base", {"etc/conf": "base", "lib": ("link", "usr/lib")})).record
    middle = store.import_archive(
        make_image(
            "example.com/middle", {"etc/conf": "middle", "lib/libm.so": "m"}, dependencies=[dep("example.com/base")]
        )
    ).record
    other = store.import_archive(make_image("example.com/other", {"etc/other": "o"})).record
    top = store.import_archive(
        make_image(
            "example.com/top",
            {"etc/top": "t"},
            dependencies=[dep("example.com/middle"), {"imageName": "example.com/other", "imageID": other.id}],
        )
    ).record
    assert layer_ids(store, top.id) == [base.id, middle.id, other.id, top.id]
    rootfs = rendered_rootfs(store, top.id)
    assert (rootfs / "etc" / "conf").read_text() == "middle"
    # The base's symlink lib -> usr/lib was replaced by the middle layer's folder, not written through.
    assert (rootfs / "lib").is_dir() and not (rootfs / "lib").is_symlink()
    assert not (rootfs / "usr").exists()
    assert tree(rootfs) == ["etc", "etc/conf", "etc/other", "etc/top", "lib", "lib/libm.so"]
    # The render is complete once, and reused.
    assert rendered_rootfs(store, top.id) == rootfs
    assert len(os.listdir(store.paths.rendered)) == 1
    # Removing a layer removes renders built from it.
    store.remove(other.id)
    assert os.listdir(store.paths.rendered) == []


def test_path_whitelist_keeps_only_listed_files(store: Store, make_image: ImageMaker) -> None:
    record = store.import_archive(
        make_image(
            "example.com/wl",
            {
                "bin/keep": "k",
                "bin/drop": "d",
                "etc/keep.conf": "c",
                "etc/link": ("link", "keep.conf"),
                "var/empty": ("dir",),
            },
            pathWhitelist=["/bin/keep", "/etc/keep.conf"],
        )
    ).record
    assert tree(rendered_rootfs(store, record.id)) == ["bin", "bin/keep", "etc", "etc/keep.conf", "var", "var/empty"]


def test_missing_dependency_says_what_to_fetch(store: Store, make_image: ImageMaker) -> None:
    record = store.import_archive(
        make_image("example.com/lonely", dependencies=[dep("example.com/gone", os="linux")])
    ).record
    with pytest.raises(NotFoundError) as caught:
        rendered_rootfs(store, record.id)
    assert "example.com/gone" in caught.value.message and "fetch" in caught.value.hint
