"""A corpus of hostile image archives: each one must be refused without a trace, inside or outside the store.

Every case is built by the test itself (tests/archives.py writes the bytes) and imported into a store
that lives in a fresh sandbox folder. Next to the store sit the places an archive aims at: an
`outside-<token>` folder holding a `secret` file, and `/tmp/outside-<token>`. The token is random per
test, so a leftover of an earlier run can never make a broken extractor look correct. After a refused
import the test checks the error (type, `rule`, `entry`), that the store holds no image (no index row,
nothing under `cas/images`), that the import removed its own work folder (`cas/tmp` is empty before any
other command could clean it up), and that nothing outside the store changed.

The staging folder of an import is `<sandbox>/store/cas/tmp/<work>/`, so from inside its `rootfs/`
five `..` reach the sandbox: `rootfs/../../../../../outside-<token>/x` is `<sandbox>/outside-<token>/x`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Type, Union

import pytest

from archives import (
    BLOCK,
    BLOCKDEV,
    FIFO,
    GNU_SPARSE,
    PAX_GLOBAL,
    VALID_MANIFEST,
    compress,
    device,
    directory,
    gnu_long_link,
    gnu_long_name,
    hardlink,
    header,
    make_aci,
    member,
    patch_header,
    pax,
    regular,
    symlink,
)
from rocket.errors import ImageError, ManifestError
from rocket.limits import ImportLimits
from rocket.store import Store

MODULE_UTILS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"
SECRET = b"the host's secret\n"
# From the folder `rootfs/` of a staging folder <sandbox>/store/cas/tmp/<work>/ up to <sandbox>.
UP_TO_SANDBOX = "../" * 5


@dataclass
class Sandbox:
    """A fresh folder holding the store and the targets a hostile archive aims at."""

    base: Path
    token: str

    @property
    def store_root(self) -> Path:
        return self.base / "store"

    @property
    def outside(self) -> Path:
        """A folder next to the store; a broken extractor would write into it."""
        return self.base / f"outside-{self.token}"

    @property
    def secret(self) -> Path:
        """A host file that hard links and symlinks aim at."""
        return self.outside / "secret"

    @property
    def tmp_outside(self) -> Path:
        """A folder in /tmp, reached by absolute names and by climbing out of the tree."""
        return Path("/tmp") / f"outside-{self.token}"

    @property
    def etc_target(self) -> Path:
        """An absolute name in /etc that must never appear."""
        return Path("/etc") / f"rocket-hostile-{self.token}"

    def escape(self, relative: str) -> str:
        """An archive name under rootfs/ that climbs out to `<sandbox>/<relative>`."""
        return "rootfs/" + UP_TO_SANDBOX + relative

    def write_archive(self, name: str, data: bytes) -> Path:
        folder = self.base / "archives"
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        return path

    def snapshot(self) -> Dict[str, object]:
        """Everything outside the store that a hostile archive could touch."""
        secret = os.lstat(self.secret)
        passwd = os.lstat("/etc/passwd")
        return {
            "sandbox": sorted(
                str(path.relative_to(self.base))
                for path in self.base.rglob("*")
                if self.store_root not in path.parents and path != self.store_root
            ),
            "secret": (secret.st_ino, secret.st_nlink, secret.st_mode, self.secret.read_bytes()),
            "tmp_outside": sorted(os.listdir(self.tmp_outside)),
            "etc_target": os.path.lexists(self.etc_target),
            "passwd": (passwd.st_ino, passwd.st_nlink, passwd.st_size, passwd.st_mtime_ns),
        }


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(base=tmp_path, token=secrets.token_hex(8))
    box.outside.mkdir()
    box.secret.write_bytes(SECRET)
    box.tmp_outside.mkdir()
    try:
        yield box
    finally:
        shutil.rmtree(box.tmp_outside, ignore_errors=True)
        if os.path.lexists(box.etc_target):
            os.unlink(box.etc_target)


Built = Union[str, Callable[[Sandbox], str], None]


@dataclass(frozen=True)
class Hostile:
    """One hostile archive, the error it must raise, and (if it names one) the entry it must blame."""

    id: str
    build: Callable[[Sandbox], bytes]
    rule: str
    entry: Built = None
    error: Type[ImageError] = ImageError
    limits: Optional[ImportLimits] = None


def _resolve(value: Built, box: Sandbox) -> Optional[str]:
    return value(box) if callable(value) else value


def _with_big_file(size: int) -> bytes:
    return make_aci([regular("rootfs/zeros", bytes(size))])


def _many_files(count: int) -> bytes:
    return make_aci([regular(f"rootfs/f{i}", b"") for i in range(count)])


def _truncated_in_data() -> bytes:
    """The archive ends 2000 bytes into the data of a 5000-byte file."""
    return make_aci([], end=b"") + header("rootfs/cut", size=5000) + b"x" * 2000


def _truncated_in_header() -> bytes:
    return make_aci([regular("rootfs/a", b"a")], end=b"") + header("rootfs/b")[:212]


def _truncated_gzip() -> bytes:
    packed = compress(make_aci([regular("rootfs/r", os.urandom(64 << 10))]), "gzip")
    return packed[: len(packed) // 2]


CASES: List[Hostile] = [
    # -- absolute names ------------------------------------------------------------------------------
    Hostile(
        "absolute-etc",
        lambda b: make_aci([regular(str(b.etc_target), b"pwned\n")]),
        "absolute-path",
        lambda b: str(b.etc_target),
    ),
    Hostile(
        "absolute-tmp",
        lambda b: make_aci([regular(f"{b.tmp_outside}/x", b"pwned\n")]),
        "absolute-path",
        lambda b: f"{b.tmp_outside}/x",
    ),
    Hostile(
        "absolute-double-slash",
        lambda b: make_aci([regular(f"/{b.tmp_outside}/x", b"pwned\n")]),
        "absolute-path",
        lambda b: f"/{b.tmp_outside}/x",
    ),
    Hostile(
        "absolute-ustar-prefix",
        lambda b: make_aci([member("x", b"pwned\n", prefix=str(b.tmp_outside))]),
        "absolute-path",
        lambda b: f"{b.tmp_outside}/x",
    ),
    Hostile(
        "absolute-pax-path",
        lambda b: make_aci([pax({"path": f"{b.tmp_outside}/x"}) + regular("rootfs/innocent", b"pwned\n")]),
        "absolute-path",
        lambda b: f"{b.tmp_outside}/x",
    ),
    # -- `..` -----------------------------------------------------------------------------------------
    Hostile("dotdot-short", lambda b: make_aci([regular("rootfs/../../x", b"pwned\n")]), "dot-dot", "rootfs/../../x"),
    Hostile(
        "dotdot-into-sandbox",
        lambda b: make_aci([regular(b.escape(f"{b.outside.name}/x"), b"pwned\n")]),
        "dot-dot",
        lambda b: b.escape(f"{b.outside.name}/x"),
    ),
    Hostile(
        "dotdot-pax-path",
        lambda b: make_aci([pax({"path": b.escape(f"{b.outside.name}/x")}) + regular("rootfs/innocent", b"pwned\n")]),
        "dot-dot",
        lambda b: b.escape(f"{b.outside.name}/x"),
    ),
    Hostile(
        "dotdot-gnu-long-name",
        lambda b: make_aci(
            [gnu_long_name("rootfs/" + "../" * 40 + f"tmp/{b.tmp_outside.name}/x") + regular("rootfs/a", b"p")]
        ),
        "dot-dot",
        lambda b: "rootfs/" + "../" * 40 + f"tmp/{b.tmp_outside.name}/x",
    ),
    Hostile(
        "dotdot-ustar-prefix",
        lambda b: make_aci([member(f"{b.outside.name}/x", b"pwned\n", prefix="rootfs/" + UP_TO_SANDBOX.rstrip("/"))]),
        "dot-dot",
        lambda b: b.escape(f"{b.outside.name}/x"),
    ),
    Hostile(
        "dotdot-pax-global-path",
        lambda b: make_aci(
            [pax({"path": b.escape(f"{b.outside.name}/x")}, typeflag=PAX_GLOBAL), regular("rootfs/a", b"p")]
        ),
        "dot-dot",
        lambda b: b.escape(f"{b.outside.name}/x"),
    ),
    Hostile(
        "nul-in-pax-path",
        lambda b: make_aci([pax({"path": "rootfs/a\x00/../../../x"}) + regular("rootfs/a", b"p")]),
        "name",
    ),
    Hostile(
        "gnu-long-name-over-limit",
        lambda b: make_aci([gnu_long_name("rootfs/" + "d/" * 3000 + "x") + regular("rootfs/a", b"p")]),
        "header-size",
    ),
    # -- writing through symlinks --------------------------------------------------------------------
    Hostile(
        "through-symlink-absolute",
        lambda b: make_aci([symlink("rootfs/a", str(b.outside)), regular("rootfs/a/x", b"pwned\n")]),
        "through-symlink",
        "rootfs/a/x",
    ),
    Hostile(
        "through-symlink-tmp",
        lambda b: make_aci([symlink("rootfs/a", str(b.tmp_outside)), regular("rootfs/a/x", b"pwned\n")]),
        "through-symlink",
        "rootfs/a/x",
    ),
    Hostile(
        "through-symlink-relative-dotdot",
        lambda b: make_aci([symlink("rootfs/up", UP_TO_SANDBOX + b.outside.name), regular("rootfs/up/x", b"pwned\n")]),
        "through-symlink",
        "rootfs/up/x",
    ),
    Hostile(
        "through-symlink-to-parent",
        # `rootfs/up -> ..` is the staging folder itself: `rootfs/up/manifest` would replace the manifest.
        lambda b: make_aci([symlink("rootfs/up", ".."), regular("rootfs/up/manifest", b"{}")]),
        "through-symlink",
        "rootfs/up/manifest",
    ),
    Hostile(
        "through-symlink-directory",
        lambda b: make_aci([symlink("rootfs/a", str(b.outside)), directory("rootfs/a/sub")]),
        "through-symlink",
        "rootfs/a/sub",
    ),
    Hostile(
        "through-symlink-deep",
        lambda b: make_aci([symlink("rootfs/a", str(b.outside)), regular("rootfs/a/b/c/x", b"pwned\n")]),
        "through-symlink",
        "rootfs/a/b/c/x",
    ),
    Hostile(
        "symlink-through-symlink",
        lambda b: make_aci([symlink("rootfs/a", str(b.outside)), symlink("rootfs/a/l", "/etc/passwd")]),
        "through-symlink",
        "rootfs/a/l",
    ),
    Hostile(
        "hardlink-name-through-symlink",
        lambda b: make_aci(
            [regular("rootfs/f", b"pwned\n"), symlink("rootfs/a", str(b.outside)), hardlink("rootfs/a/x", "rootfs/f")]
        ),
        "through-symlink",
        "rootfs/a/x",
    ),
    Hostile(
        "rootfs-is-symlink",
        lambda b: make_aci([symlink("rootfs", str(b.outside)), regular("rootfs/x", b"pwned\n")], rootfs=False),
        "layout",
        "rootfs",
    ),
    # -- replacing an earlier entry ------------------------------------------------------------------
    Hostile(
        "symlink-then-file",
        lambda b: make_aci([symlink("rootfs/a", str(b.secret)), regular("rootfs/a", b"pwned\n")]),
        "duplicate",
        "rootfs/a",
    ),
    Hostile(
        "symlink-then-hardlink",
        lambda b: make_aci(
            [regular("rootfs/f", b"pwned\n"), symlink("rootfs/a", str(b.secret)), hardlink("rootfs/a", "rootfs/f")]
        ),
        "duplicate",
        "rootfs/a",
    ),
    Hostile(
        "symlink-then-directory",
        lambda b: make_aci([symlink("rootfs/a", str(b.outside)), directory("rootfs/a")]),
        "duplicate",
        "rootfs/a",
    ),
    Hostile(
        "duplicate-file",
        lambda b: make_aci([regular("rootfs/a", b"one\n"), regular("rootfs/a", b"two\n")]),
        "duplicate",
        "rootfs/a",
    ),
    Hostile(
        "file-then-directory",
        lambda b: make_aci([regular("rootfs/a", b"one\n"), directory("rootfs/a")]),
        "duplicate",
        "rootfs/a",
    ),
    Hostile(
        "directory-then-symlink",
        lambda b: make_aci([directory("rootfs/a"), symlink("rootfs/a", str(b.outside))]),
        "duplicate",
        "rootfs/a",
    ),
    Hostile(
        "file-beneath-file",
        lambda b: make_aci([regular("rootfs/a", b"one\n"), regular("rootfs/a/x", b"two\n")]),
        "not-a-directory",
        "rootfs/a/x",
    ),
    # -- hard links ----------------------------------------------------------------------------------
    Hostile("hardlink-etc-passwd", lambda b: make_aci([hardlink("rootfs/passwd", "/etc/passwd")]), "absolute-path"),
    Hostile(
        "hardlink-absolute-secret",
        lambda b: make_aci([hardlink("rootfs/s", str(b.secret))]),
        "absolute-path",
    ),
    Hostile("hardlink-dotdot-short", lambda b: make_aci([hardlink("rootfs/s", "../../x")]), "dot-dot"),
    Hostile(
        "hardlink-dotdot-secret",
        lambda b: make_aci([hardlink("rootfs/s", b.escape(f"{b.outside.name}/secret"))]),
        "dot-dot",
    ),
    Hostile(
        "hardlink-gnu-long-link-dotdot",
        lambda b: make_aci([gnu_long_link("rootfs/" + "../" * 40 + str(b.secret)[1:]) + hardlink("rootfs/s", "x")]),
        "dot-dot",
    ),
    Hostile(
        "hardlink-pax-linkpath-absolute",
        lambda b: make_aci([pax({"linkpath": str(b.secret)}) + hardlink("rootfs/s", "rootfs/innocent")]),
        "absolute-path",
    ),
    Hostile(
        "hardlink-to-later-entry",
        lambda b: make_aci([hardlink("rootfs/early", "rootfs/late"), regular("rootfs/late", b"late\n")]),
        "hardlink",
        "rootfs/early",
    ),
    Hostile(
        "hardlink-to-manifest",
        lambda b: make_aci([hardlink("rootfs/m", "manifest")]),
        "hardlink",
        "rootfs/m",
    ),
    Hostile(
        "hardlink-through-symlink",
        lambda b: make_aci([symlink("rootfs/d", str(b.outside)), hardlink("rootfs/s", "rootfs/d/secret")]),
        "hardlink",
        "rootfs/s",
    ),
    Hostile(
        "hardlink-to-directory",
        lambda b: make_aci([directory("rootfs/d"), hardlink("rootfs/s", "rootfs/d")]),
        "hardlink",
        "rootfs/s",
    ),
    # -- the manifest and the layout -----------------------------------------------------------------
    Hostile(
        "two-manifests",
        lambda b: make_aci([regular("manifest", VALID_MANIFEST)]),
        "duplicate",
        "manifest",
    ),
    Hostile(
        "missing-manifest",
        lambda b: make_aci([regular("rootfs/a", b"a")], manifest=None),
        "manifest-missing",
    ),
    Hostile(
        "manifest-symlink",
        lambda b: make_aci([symlink("manifest", "/etc/passwd")], manifest=None),
        "manifest-type",
        "manifest",
    ),
    Hostile(
        "manifest-directory",
        lambda b: make_aci([directory("manifest")], manifest=None),
        "manifest-type",
        "manifest",
    ),
    Hostile(
        "manifest-over-1mib",
        lambda b: make_aci([], manifest=VALID_MANIFEST + b" " * (1 << 20)),
        "manifest-size",
        "manifest",
    ),
    Hostile(
        "manifest-not-json",
        lambda b: make_aci([], manifest=b"this is not JSON"),
        "json",
        error=ManifestError,
    ),
    Hostile("entry-outside-layout", lambda b: make_aci([regular("extra", b"x")]), "layout", "extra"),
    Hostile(
        "entry-beneath-manifest",
        lambda b: make_aci([regular("manifest/x", b"x")]),
        "layout",
        "manifest/x",
    ),
    Hostile(
        "rootfs-regular-file",
        lambda b: make_aci([regular("rootfs", b"")], rootfs=False),
        "layout",
        "rootfs",
    ),
    Hostile("archive-root-file", lambda b: make_aci([regular("./", b"x")]), "layout", "./"),
    # -- bombs ---------------------------------------------------------------------------------------
    Hostile(
        "bomb-size-gzip",
        lambda b: compress(_with_big_file(16 << 20), "gzip"),
        "max-size",
        limits=ImportLimits(max_size=1 << 20),
    ),
    Hostile(
        "bomb-size-bzip2",
        lambda b: compress(_with_big_file(16 << 20), "bzip2"),
        "max-size",
        limits=ImportLimits(max_size=1 << 20),
    ),
    Hostile(
        "bomb-size-xz",
        lambda b: compress(_with_big_file(16 << 20), "xz"),
        "max-size",
        limits=ImportLimits(max_size=1 << 20),
    ),
    Hostile(
        "bomb-entries",
        lambda b: compress(_many_files(200), "gzip"),
        "max-entries",
        limits=ImportLimits(max_entries=50),
    ),
    # -- broken tar ----------------------------------------------------------------------------------
    Hostile("truncated-in-data", lambda b: _truncated_in_data(), "truncated", "rootfs/cut"),
    Hostile("truncated-in-header", lambda b: _truncated_in_header(), "truncated"),
    # Cut exactly between two entries: without the end marker this would import a smaller image.
    Hostile("truncated-between-entries", lambda b: make_aci([regular("rootfs/a", b"x")], end=b""), "truncated"),
    Hostile(
        "truncated-after-extension-header",
        lambda b: make_aci([pax({"path": "rootfs/x"})]),
        "truncated",
    ),
    Hostile("truncated-gzip", lambda b: _truncated_gzip(), "compression"),
    Hostile(
        "bad-checksum",
        lambda b: make_aci([header("rootfs/a", bad_checksum=True)]),
        "header",
    ),
    Hostile("not-a-tar", lambda b: b"this is not a tar archive, just text\n" * 100, "header"),
    Hostile(
        "data-after-end-marker",
        lambda b: make_aci([regular("rootfs/a", b"a")]) + regular("rootfs/hidden", b"seen by some readers\n"),
        "trailing-data",
    ),
    Hostile(
        "data-after-end-marker-gzip",
        lambda b: compress(make_aci([regular("rootfs/a", b"a")]) + b"\x01", "gzip"),
        "trailing-data",
    ),
    Hostile(
        "directory-claims-data",
        lambda b: make_aci([member("rootfs/d", b"hidden file data\n", typeflag=b"5")]),
        "header",
        "rootfs/d",
    ),
    Hostile(
        "symlink-claims-data",
        lambda b: make_aci([member("rootfs/l", b"hidden\n", typeflag=b"2", linkname="target")]),
        "header",
        "rootfs/l",
    ),
    Hostile(
        "sparse-gnu",
        lambda b: make_aci([member("rootfs/sparse", bytes(BLOCK), typeflag=GNU_SPARSE)]),
        "sparse",
        "rootfs/sparse",
    ),
    Hostile(
        "sparse-pax",
        lambda b: make_aci(
            [
                pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "rootfs/s"})
                + regular("rootfs/GNUSparseFile.0/s", bytes(BLOCK))
            ]
        ),
        "sparse",
    ),
    Hostile(
        "unknown-entry-type",
        lambda b: make_aci([member("rootfs/v", typeflag=b"V")]),
        "entry-type",
        "rootfs/v",
    ),
    Hostile(
        "negative-uid-base256",
        lambda b: make_aci([patch_header(header("rootfs/a"), 108, b"\xff" * 8)]),  # the uid field
        "header",
        "rootfs/a",
    ),
    Hostile(
        "name-component-too-long",
        lambda b: make_aci([pax({"path": "rootfs/" + "n" * 300}) + regular("rootfs/a", b"a")]),
        "name",
    ),
]


def _assert_store_empty(store: Store) -> None:
    """No index row, nothing under cas/images, and the import's own work folder and lock are gone."""
    assert store.images() == []
    assert os.listdir(store.paths.images) == []
    assert os.listdir(store.paths.tmp) == [], "the failed import left its work folder behind"


def _import_expecting_error(box: Sandbox, data: bytes, *, limits: Optional[ImportLimits] = None) -> ImageError:
    """Import `data` into a fresh store in the sandbox; return the error after checking no trace was left."""
    path = box.write_archive("hostile.aci", data)
    before = box.snapshot()
    store = Store(box.store_root, limits=limits)
    try:
        try:
            result = store.import_archive(path)
        except ImageError as exc:
            error = exc
        else:
            error = None
        # Outside the store first: a write there is the worst failure, whatever else happened.
        assert box.snapshot() == before, "the import changed something outside the store"
        assert not os.path.lexists(box.etc_target)
        assert error is not None, f"the archive was accepted as {result.record.id}"
        _assert_store_empty(store)
    finally:
        store.close()
    return error


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_archive_is_refused_without_a_trace(sandbox: Sandbox, case: Hostile) -> None:
    error = _import_expecting_error(sandbox, case.build(sandbox), limits=case.limits)
    assert type(error) is case.error
    assert error.rule == case.rule, error.message
    expected_entry = _resolve(case.entry, sandbox)
    if expected_entry is not None:
        assert error.entry == expected_entry


def test_corpus_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 20
    assert len({case.id for case in CASES}) == len(CASES)


def test_hardlink_error_names_the_member_not_its_target(sandbox: Sandbox) -> None:
    error = _import_expecting_error(sandbox, make_aci([hardlink("rootfs/passwd", "/etc/passwd")]))
    assert error.rule == "absolute-path"
    assert error.entry == "rootfs/passwd"


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(lambda: [device("rootfs/n"), regular("rootfs/n", b"x")], id="device-then-file"),
        pytest.param(lambda: [device("rootfs/n"), symlink("rootfs/n", "/etc")], id="device-then-symlink"),
        pytest.param(lambda: [device("rootfs/n"), device("rootfs/n")], id="device-twice"),
        pytest.param(lambda: [device("rootfs/n", typeflag=FIFO), regular("rootfs/n/x", b"x")], id="fifo-then-beneath"),
    ],
)
def test_entry_replacing_a_skipped_device_node_is_a_duplicate(
    sandbox: Sandbox, entries: Callable[[], List[bytes]]
) -> None:
    error = _import_expecting_error(sandbox, make_aci(entries()))
    assert error.rule in ("duplicate", "not-a-directory")


def test_device_nodes_import_with_a_warning_and_are_not_created(sandbox: Sandbox) -> None:
    archive = make_aci(
        [
            directory("rootfs/dev"),
            device("rootfs/dev/null", major=1, minor=3),
            device("rootfs/dev/sda", major=8, minor=0, typeflag=BLOCKDEV),
            device("rootfs/dev/pipe", typeflag=FIFO),
            regular("rootfs/dev/readme", b"the runtime provides /dev\n"),
        ]
    )
    path = sandbox.write_archive("devices.aci", archive)
    store = Store(sandbox.store_root)
    try:
        result = store.import_archive(path)
        assert len(result.warnings) == 1
        assert "rootfs/dev/null" in result.warnings[0]
        dev = store.paths.image_rootfs(result.record.id) / "dev"
        assert sorted(os.listdir(dev)) == ["readme"]
        assert os.listdir(store.paths.tmp) == []
        store.verify(result.record.id)  # the skipped nodes are still part of the exported archive
    finally:
        store.close()


def test_host_policy_xattrs_are_dropped_with_a_warning(sandbox: Sandbox) -> None:
    """trusted.overlay.* would steer the overlay mounts of pods; an image may not set it."""
    archive = make_aci(
        [
            pax({"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.trusted.overlay.redirect": "/etc"})
            + directory("rootfs/d"),
            pax({"SCHILY.xattr.trusted.overlay.metacopy": ""}) + regular("rootfs/d/f", b"f\n"),
        ]
    )
    path = sandbox.write_archive("xattrs.aci", archive)
    store = Store(sandbox.store_root)
    try:
        result = store.import_archive(path)
        assert any("trusted.overlay.opaque" in warning for warning in result.warnings)
        rootfs = store.paths.image_rootfs(result.record.id)
        for target in (rootfs / "d", rootfs / "d" / "f"):
            assert [name for name in os.listxattr(target) if name.startswith("trusted.")] == []
        store.verify(result.record.id)
    finally:
        store.close()


def test_benign_archive_with_outward_symlinks_imports_and_follows_nothing(sandbox: Sandbox) -> None:
    """The control case: the rules refuse writes through links, not links themselves."""
    archive = make_aci(
        [
            symlink("rootfs/abs", str(sandbox.outside)),
            symlink("rootfs/up", ".."),
            symlink("rootfs/secret", str(sandbox.secret)),
            regular("rootfs//etc/hostname", b"box\n"),  # `//` inside a name is not absolute
            regular("rootfs/./bin/tool", b"#!/bin/sh\n", mode=0o4755),
            hardlink("rootfs/bin/tool-link", "rootfs/bin/tool"),
            hardlink("rootfs/secret-link", "rootfs/secret"),  # a hard link to the symlink itself
        ]
    )
    path = sandbox.write_archive("benign.aci", archive)
    before = sandbox.snapshot()
    store = Store(sandbox.store_root)
    try:
        result = store.import_archive(path)
        rootfs = store.paths.image_rootfs(result.record.id)
        assert os.readlink(rootfs / "abs") == str(sandbox.outside)
        assert os.readlink(rootfs / "up") == ".."
        assert os.readlink(rootfs / "secret-link") == str(sandbox.secret)
        assert (rootfs / "etc" / "hostname").read_bytes() == b"box\n"
        assert os.stat(rootfs / "bin" / "tool").st_nlink == 2
        assert os.stat(rootfs / "bin" / "tool").st_mode & 0o7777 == 0o4755
        store.verify(result.record.id)
    finally:
        store.close()
    assert sandbox.snapshot() == before


# -- through the command line ------------------------------------------------------------------------

CLI_CASES = [
    pytest.param(
        lambda b: make_aci([symlink("rootfs/a", str(b.outside)), regular("rootfs/a/x", b"pwned\n")]),
        lambda b: "rootfs/a/x",
        [],
        id="through-symlink",
    ),
    pytest.param(
        lambda b: make_aci([regular(b.escape(f"{b.outside.name}/x"), b"pwned\n")]),
        lambda b: b.escape(f"{b.outside.name}/x"),
        [],
        id="dot-dot",
    ),
    pytest.param(
        lambda b: make_aci([hardlink("rootfs/passwd", "/etc/passwd")]),
        lambda b: "rootfs/passwd",
        [],
        id="hardlink-etc-passwd",
    ),
    pytest.param(
        lambda b: compress(_with_big_file(16 << 20), "gzip"),
        lambda b: "hostile.aci",  # no member is at fault: the message names the file
        ["--max-image-size", "1M"],
        id="bomb",
    ),
]


def rocket_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    env = dict(os.environ, PYTHONPATH=str(MODULE_UTILS))
    return subprocess.run(
        [sys.executable, "-m", "rocket", "--dir", str(data_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("build", "named", "flags"), CLI_CASES)
def test_cli_refuses_hostile_archive_with_one_clear_line(
    sandbox: Sandbox,
    build: Callable[[Sandbox], bytes],
    named: Callable[[Sandbox], str],
    flags: List[str],
) -> None:
    path = sandbox.write_archive("hostile.aci", build(sandbox))
    before = sandbox.snapshot()
    done = rocket_cli(*flags, "fetch", "--insecure-options=image", str(path), data_dir=sandbox.store_root)
    assert done.returncode == 254, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    errors = [line for line in lines if not line.startswith(("rocket: hint:", "rocket: cause:"))]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("rocket: ")
    assert named(sandbox) in errors[0]
    assert sandbox.snapshot() == before
    tmp = sandbox.store_root / "cas" / "tmp"
    assert os.listdir(tmp) == []
    assert os.listdir(sandbox.store_root / "cas" / "images") == []
    listed = rocket_cli("image", "list", "--format=json", data_dir=sandbox.store_root)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
