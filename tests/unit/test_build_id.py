"""build.build_id and compression.archive_image_id: an image ID without writing an archive, and of one."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from images import image_manifest
from rocket.build import build_id, build_image
from rocket.compression import archive_image_id
from rocket.errors import ImageError, UsageError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "rootfs" / "etc").mkdir(parents=True)
    (source / "rootfs" / "etc" / "hello").write_text("hello\n")
    (source / "manifest").write_text(json.dumps(image_manifest("example.com/hello")))
    return source


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_build_id_is_the_built_image_id(folder: Path, tmp_path: Path, compression: str) -> None:
    built = build_image(folder, tmp_path / "out.aci", compression=compression, source_date_epoch=1700000000)
    assert build_id(folder, source_date_epoch=1700000000) == built.image_id
    assert archive_image_id(tmp_path / "out.aci") == (built.image_id, compression)


def test_build_id_follows_the_files(folder: Path) -> None:
    before = build_id(folder, source_date_epoch=0)
    (folder / "rootfs" / "etc" / "hello").write_text("changed\n")
    assert build_id(folder, source_date_epoch=0) != before


def test_xz_is_not_taken_for_an_encrypted_archive(folder: Path, tmp_path: Path) -> None:
    plain = build_image(folder, tmp_path / "plain.aci", compression="none")
    (tmp_path / "x.aci").write_bytes(lzma.compress((tmp_path / "plain.aci").read_bytes()))
    assert archive_image_id(tmp_path / "x.aci") == (plain.image_id, "xz")


def test_encrypted_and_missing_archives(tmp_path: Path) -> None:
    (tmp_path / "secret.aci").write_bytes(b"\x85\x01\x0c" + b"\0" * 64)  # an OpenPGP packet header
    with pytest.raises(ImageError) as caught:
        archive_image_id(tmp_path / "secret.aci")
    assert caught.value.rule == "encrypted"
    with pytest.raises(ImageError):
        archive_image_id(tmp_path / "missing.aci")
    with pytest.raises(UsageError):
        build_id(tmp_path)
