"""The `rocket` command line for images, run as a real process the way an operator runs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from images import ImageMaker, image_manifest

ENGINE = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"


def rocket(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ENGINE))
    env.pop("ROCKET_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "rocket", "--dir", str(data), *args], capture_output=True, text=True, env=env
    )
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def engine_error(result: subprocess.CompletedProcess) -> List[str]:
    assert result.returncode == 254, (result.returncode, result.stdout, result.stderr)
    return result.stderr.splitlines()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_fetch_fails_closed_without_a_signature(data: Path, make_image: ImageMaker) -> None:
    archive = make_image()
    lines = engine_error(rocket(data, "fetch", str(archive), check=False))
    assert str(archive) in lines[0] and "--insecure-options=image" in lines[1]
    assert json.loads(rocket(data, "image", "list", "--format=json").stdout) == []
    fetched = rocket(data, "fetch", "--full", "--insecure-options=image", str(archive)).stdout.strip()
    audit = json.loads(rocket(data, "image", "audit", "--format=json").stdout)
    assert [(e["event"], e.get("reason"), e.get("flag"), e.get("image")) for e in audit] == [
        ("rejected", "unsigned", None, None),
        ("accepted-insecure", None, "image", fetched),
    ]
    assert "accepted-insecure" in rocket(data, "image", "audit").stdout


def test_image_lifecycle(data: Path, make_image: ImageMaker, tmp_path: Path) -> None:
    archive = make_image("example.com/web", {"bin/app": "app", "etc/motd": "hi"}, labels={"version": "1.2"})
    expected = "sha512-" + hashlib.sha512(archive.read_bytes()).hexdigest()
    # Global flags are accepted after the verb too, as rkt's are.
    fetched = rocket(data, "fetch", "--full", "--insecure-options=image", str(archive))
    assert fetched.stdout.strip() == expected
    assert "verification skipped" in fetched.stderr

    listing = json.loads(rocket(data, "image", "list", "--format=json").stdout)
    assert [(i["id"], i["name"], i["labels"]["version"]) for i in listing] == [(expected, "example.com/web", "1.2")]
    table = rocket(data, "image", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "SIZE"] and expected[:19] in table[1]
    assert "example.com/web:1.2" in table[1]

    manifest = json.loads(rocket(data, "image", "cat-manifest", expected[:12]).stdout)
    assert manifest["name"] == "example.com/web"

    exported = tmp_path / "out.aci"
    rocket(data, "image", "export", "example.com/web:1.2", str(exported))
    assert exported.read_bytes() == archive.read_bytes()
    engine_error(rocket(data, "image", "export", "example.com/web", str(exported), check=False))
    rocket(data, "image", "export", "--overwrite", "example.com/web", str(exported))

    extracted = tmp_path / "extracted"
    rocket(data, "image", "extract", expected, str(extracted))
    assert (extracted / "rootfs" / "etc" / "motd").read_text() == "hi"
    assert json.loads((extracted / "manifest").read_text())["name"] == "example.com/web"
    engine_error(rocket(data, "image", "extract", expected, str(extracted), check=False))
    rocket(data, "image", "render", "--rootfs-only", "--overwrite", expected, str(extracted))
    assert sorted(os.listdir(extracted)) == ["bin", "etc"]

    assert rocket(data, "image", "verify").stdout.strip() == f"ok {expected}"
    rocket(data, "image", "rm", expected[:16])
    assert json.loads(rocket(data, "image", "list", "--format=json").stdout) == []
    lines = engine_error(rocket(data, "image", "rm", expected[:16], check=False))
    assert "no image" in lines[0]


def test_gc_grace_period(data: Path, make_image: ImageMaker) -> None:
    rocket(data, "fetch", "--full", "--insecure-options=image", str(make_image()))
    assert rocket(data, "image", "gc").stdout == ""
    assert rocket(data, "image", "gc", "--grace-period=0s").stdout.startswith("removed sha512-")
    engine_error(rocket(data, "image", "gc", "--grace-period=soon", check=False))


def test_validate_archive_and_manifests(data: Path, make_image: ImageMaker, tmp_path: Path) -> None:
    archive = make_image(compression="gzip")
    assert "valid image sha512-" in rocket(data, "image", "validate", str(archive)).stdout
    vectors = Path(os.environ.get("ROCKET_VECTORS", Path(__file__).resolve().parents[3] / "shared" / "vectors"))
    for example in sorted((vectors / "appc" / "examples").glob("*.json")):
        assert "valid" in rocket(data, "image", "validate", str(example)).stdout
    bad = tmp_path / "bad.json"
    manifest = image_manifest("example.com/bad")
    manifest["app"]["exec"] = "not a list"  # type: ignore[index]
    bad.write_text(json.dumps(manifest))
    lines = engine_error(rocket(data, "image", "validate", str(bad), check=False))
    assert "app.exec" in lines[0]


def test_build_is_reproducible(data: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "rootfs" / "bin").mkdir(parents=True)
    (source / "rootfs" / "bin" / "hello").write_text("hello\n")
    (source / "manifest").write_text(json.dumps(image_manifest("example.com/hello")))
    first = rocket(data, "image", "build", str(source), str(tmp_path / "a.aci")).stdout.strip()
    again = rocket(data, "image", "build", str(source), str(tmp_path / "b.aci")).stdout.strip()
    assert first == again
    # A fresh copy has new mtimes: SOURCE_DATE_EPOCH clamps them, so the copy builds the same image.
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    ids = {
        rocket(data, "image", "build", "--source-date-epoch=1700000000", str(folder), str(tmp_path / f"{n}.aci")).stdout
        for n, folder in enumerate((source, copy))
    }
    assert len(ids) == 1
    engine_error(rocket(data, "image", "build", str(source), str(tmp_path / "a.aci"), check=False))
    fetched = rocket(data, "fetch", "--full", "--insecure-options=image", str(tmp_path / "a.aci")).stdout.strip()
    assert fetched == first


def test_bad_flags_are_clear_errors(data: Path) -> None:
    lines = engine_error(rocket(data, "--insecure-options=everything", "image", "list", check=False))
    assert "everything" in lines[0]
    lines = engine_error(rocket(data, "fetch", "--full", "--insecure-options=image", "/nonexistent/x.aci", check=False))
    assert "/nonexistent/x.aci" in lines[0]
    assert rocket(data, "version").stdout.startswith("rocket Version:")
    config = json.loads(rocket(data, "config").stdout)
    assert config["dir"] == str(data)
