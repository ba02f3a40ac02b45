"""The image store: import, resolve, remove, gc, export, verify, and what each leaves on disk."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from images import ImageMaker
from rocket.errors import NotFoundError, StoreError, UsageError
from rocket.store import Store


def sha512_id(data: bytes) -> str:
    return "sha512-" + hashlib.sha512(data).hexdigest()


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_import_gives_the_hash_of_the_uncompressed_tar(store: Store, make_image: ImageMaker, compression: str) -> None:
    archive = make_image(files={"bin/true": "x"}, compression=compression)
    # The same archive uncompressed (two builds a second apart would differ in their files' mtimes).
    plain = gzip.decompress(archive.read_bytes()) if compression == "gzip" else archive.read_bytes()
    result = store.import_archive(archive)
    assert result.record.id == sha512_id(plain)
    assert result.compression == compression
    assert result.record.name == "example.com/test"
    assert result.record.labels == {"os": "linux", "arch": "amd64"}
    assert (store.paths.image_rootfs(result.record.id) / "bin" / "true").read_text() == "x"


def test_import_twice_is_one_image(store: Store, make_image: ImageMaker) -> None:
    archive = make_image(files={"a": "1"})
    first = store.import_archive(archive)
    second = store.import_archive(archive)
    assert not first.already_present and second.already_present
    assert [r.id for r in store.images()] == [first.record.id]
    assert os.listdir(store.paths.tmp) == []


def test_export_is_byte_identical_and_verify_detects_tampering(store: Store, make_image: ImageMaker) -> None:
    archive = make_image(files={"etc/hosts": "127.0.0.1 localhost\n", "bin/sh": ("link", "busybox")})
    record = store.import_archive(archive).record
    out = io.BytesIO()
    store.export(record.id, out)
    assert out.getvalue() == archive.read_bytes()
    store.verify(record.id)
    (store.paths.image_rootfs(record.id) / "etc" / "hosts").write_text("127.0.0.1 evil\n")
    with pytest.raises(StoreError) as caught:
        store.verify(record.id)
    assert record.id in caught.value.message


def test_resolve_by_prefix_name_and_version(store: Store, make_image: ImageMaker) -> None:
    old = store.import_archive(make_image("example.com/app", labels={"version": "1"})).record
    time.sleep(0.01)
    new = store.import_archive(make_image("example.com/app", labels={"version": "2"})).record
    assert store.resolve(old.id[:20]).id == old.id
    assert store.resolve(old.id[len("sha512-") :][:16]).id == old.id
    assert store.resolve("example.com/app").id == new.id
    assert store.resolve("example.com/app:1").id == old.id
    assert store.resolve("example.com/app,version=2").id == new.id
    with pytest.raises(NotFoundError):
        store.resolve("example.com/app:3")
    with pytest.raises(NotFoundError):
        store.resolve("example.com/other")
    with pytest.raises(UsageError):
        store.resolve("sha512-")


def test_ambiguous_prefix_is_an_error(store: Store) -> None:
    # Colliding IDs are made in the index directly: finding a real 4-digit collision takes ~300 imports.
    for tail in ("aaaaa" + "0" * 123, "aaaab" + "0" * 123):
        store.index.add(image_id="sha512-" + tail, name="example.com/x", labels={}, size=0)
    with pytest.raises(StoreError) as caught:
        store.resolve("sha512-aaaa")
    assert not isinstance(caught.value, NotFoundError)
    assert "ambiguous" in caught.value.message
    assert store.resolve("sha512-aaaab").id.startswith("sha512-aaaab")


def test_remove_and_gc(store: Store, make_image: ImageMaker) -> None:
    kept = store.import_archive(make_image(files={"k": "1"})).record
    dropped = store.import_archive(make_image(files={"d": "1"})).record
    store.remove(dropped.id)
    assert not store.paths.image_dir(dropped.id).exists()
    with pytest.raises(NotFoundError):
        store.remove(dropped.id)
    assert store.gc(grace_seconds=3600) == []
    assert store.gc(grace_seconds=0) == [kept.id]
    assert store.images() == []
    assert os.listdir(store.paths.images) == [] and os.listdir(store.paths.tmp) == []


def test_metadata_is_kept(store: Store, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("ownership needs root")
    source = tmp_path / "img"
    (source / "rootfs" / "bin").mkdir(parents=True)
    tool = source / "rootfs" / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    os.chown(tool, 1234, 5678)
    os.chmod(tool, 0o4755)
    os.utime(tool, (1_600_000_000, 1_600_000_000))
    os.setxattr(tool, "user.rocket", b"kept")
    os.link(tool, source / "rootfs" / "bin" / "tool2")
    from images import image_manifest

    (source / "manifest").write_text(__import__("json").dumps(image_manifest("example.com/meta")))
    from rocket.build import build_image

    build_image(source, tmp_path / "meta.aci")
    record = store.import_archive(tmp_path / "meta.aci").record
    stored = store.paths.image_rootfs(record.id) / "bin" / "tool"
    info = stored.lstat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777, int(info.st_mtime)) == (1234, 5678, 0o4755, 1_600_000_000)
    assert os.getxattr(stored, "user.rocket") == b"kept"
    assert info.st_nlink == 2 and (stored.parent / "tool2").stat().st_ino == info.st_ino


def test_a_use_soon_after_the_last_writes_nothing(store: Store, make_image: ImageMaker) -> None:
    """Pod starts mark their images used, but not again within TOUCH_INTERVAL: no index write each time."""
    from rocket.store import TOUCH_INTERVAL

    image_id = store.import_archive(make_image(name="example.com/used")).record.id
    recorded = store.index.get(image_id)
    assert recorded is not None
    store.touch(image_id, unless_since=recorded.last_used)
    assert store.index.get(image_id).last_used == recorded.last_used  # type: ignore[union-attr]
    store.touch(image_id, unless_since=recorded.last_used - TOUCH_INTERVAL - 1)
    assert store.index.get(image_id).last_used > recorded.last_used  # type: ignore[union-attr]


def test_a_manifest_is_validated_once_per_content_and_read_as_a_fresh_copy(
    store: Store, make_image: ImageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rocket run reads an image's manifest several times before its pod starts: validated once, but
    a manifest changed on disk is validated again, and no caller sees another's changes."""
    from rocket import manifest as manifest_module
    from rocket.errors import ManifestError

    image_id = store.import_archive(make_image(name="example.com/twice")).record.id
    validations: list = []
    real = manifest_module.validate_image_manifest
    monkeypatch.setattr(manifest_module, "validate_image_manifest", lambda obj: validations.append(1) or real(obj))
    first = store.manifest(image_id)
    first["name"] = "example.com/changed-by-a-caller"
    second = store.manifest(image_id)
    assert second["name"] == "example.com/twice" and len(validations) == 1
    store.paths.image_manifest(image_id).write_bytes(b'{"acKind": "ImageManifest", "acVersion": "0.8.11"}')
    with pytest.raises(ManifestError):
        store.manifest(image_id)
