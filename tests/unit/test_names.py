"""Tests for rocket.names: AC identifiers and names, labels, hashes, image references."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from rocket.errors import ManifestError, UsageError
from rocket.names import (
    VALID_OS_ARCH,
    app_name_from_image,
    check_ac_identifier,
    check_ac_name,
    check_hash,
    check_labels,
    is_ac_identifier,
    is_ac_name,
    is_full_image_id,
    parse_image_reference,
)

FULL_ID = "sha512-" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    "value",
    [
        "database",
        "example.com/database",
        "example.com/user/app_v1",
        "sub-domain.example.com/org/product/release",
        "a",
        "0",
    ],
)
def test_ac_identifier_accepts(value: str) -> None:
    assert check_ac_identifier(value, field="name") == value
    assert is_ac_identifier(value)


@pytest.mark.parametrize(
    "value",
    ["", "Example.com", "-a", "a-", "a//b", "a..b", "a b", "a\n", "example.com:80/app", "ä", "a/"],
)
def test_ac_identifier_rejects(value: str) -> None:
    with pytest.raises(ManifestError) as info:
        check_ac_identifier(value, field="labels[3].name")
    assert info.value.field == "labels[3].name"
    assert info.value.rule == "ac-identifier"


def test_ac_identifier_regex_is_stricter_than_the_reference() -> None:
    # spec/types.md lists this example and the Go reference (chars + edges only) accepts it, but the
    # regex the spec also states, which SPEC-NOTES says to enforce, does not: two separators in a row.
    with pytest.raises(ManifestError):
        check_ac_identifier("example.com/~user/app_v1", field="name")


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], {}])
def test_ac_identifier_rejects_non_strings(value: object) -> None:
    with pytest.raises(ManifestError) as info:
        check_ac_identifier(value, field="name")
    assert (info.value.field, info.value.rule) == ("name", "type")


@pytest.mark.parametrize("value", ["database", "product-database-release", "a1", "9"])
def test_ac_name_accepts(value: str) -> None:
    assert check_ac_name(value, field="apps[0].name") == value
    assert is_ac_name(value)


@pytest.mark.parametrize("value", ["", "a.b", "a_b", "a/b", "A", "a--b", "-a", "a-", "a\n", None, 3])
def test_ac_name_rejects(value: object) -> None:
    with pytest.raises(ManifestError) as info:
        check_ac_name(value, field="apps[1].name")
    assert info.value.field == "apps[1].name"


def test_valid_os_arch_table() -> None:
    assert VALID_OS_ARCH["linux"] == frozenset(
        {"amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b", "ppc64", "ppc64le", "s390x"}
    )
    assert VALID_OS_ARCH["freebsd"] == frozenset({"amd64", "i386", "arm"})
    assert VALID_OS_ARCH["darwin"] == frozenset({"x86_64", "i386"})
    assert set(VALID_OS_ARCH) == {"linux", "freebsd", "darwin"}


def _labels(**pairs: str) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs.items()]


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"version": "1.0.0"},
        {"os": "linux"},
        {"os": "linux", "arch": "amd64"},
        {"os": "linux", "arch": "s390x"},
        {"os": "freebsd", "arch": "arm"},
        {"os": "darwin", "arch": "x86_64"},
        {"env": "canary", "os": "linux"},
        {"version": ""},
    ],
)
def test_labels_accepted(labels: dict[str, str]) -> None:
    assert check_labels(_labels(**labels), field="labels") == labels


def test_labels_null_is_empty() -> None:
    assert check_labels(None, field="labels") == {}


@pytest.mark.parametrize(
    ("value", "field", "rule"),
    [
        ({"x": 1}, "labels", "type"),
        ([1], "labels[0]", "type"),
        ([{"value": "x"}], "labels[0].name", "required"),
        ([{"name": "version"}], "labels[0].value", "required"),
        ([{"name": "version", "value": 1}], "labels[0].value", "type"),
        ([{"name": "Version", "value": "1"}], "labels[0].name", "ac-identifier"),
        ([{"name": "name", "value": "x"}], "labels[0].name", "label-name"),
        (_labels(version="1", env="a") + _labels(version="2"), "labels[2].name", "unique"),
        (_labels(os="windows"), "labels[0].value", "os-arch"),
        (_labels(arch="amd64"), "labels[0].value", "os-arch"),
        (_labels(version="1", os="linux", arch="x86_64"), "labels[2].value", "os-arch"),
        (_labels(arch="arm", os="darwin"), "labels[0].value", "os-arch"),
    ],
)
def test_labels_rejected(value: object, field: str, rule: str) -> None:
    with pytest.raises(ManifestError) as info:
        check_labels(value, field="labels")
    assert (info.value.field, info.value.rule) == (field, rule)


@pytest.mark.parametrize("value", [FULL_ID, "sha512-...", "sha512-abc", "sha512-0"])
def test_hash_accepts_like_the_reference(value: str) -> None:
    assert check_hash(value, field="id") == value


@pytest.mark.parametrize("value", ["", "sha512", "sha512-", "sha256-abc", "-abc", "sha512-a-b", "SHA512-abc", None, 5])
def test_hash_rejects(value: object) -> None:
    with pytest.raises(ManifestError) as info:
        check_hash(value, field="dependencies[0].imageID")
    assert info.value.field == "dependencies[0].imageID"


@pytest.mark.parametrize(
    ("value", "full"),
    [
        (FULL_ID, True),
        (FULL_ID[:-1], False),
        (FULL_ID + "0", False),
        (FULL_ID.upper().replace("SHA512", "sha512"), False),
        ("sha512-...", False),
        (FULL_ID + "\n", False),
    ],
)
def test_is_full_image_id(value: str, full: bool) -> None:
    assert is_full_image_id(value) is full


@pytest.mark.parametrize(
    ("image", "app"),
    [
        ("coreos.com/ace-validator-main", "ace-validator-main"),
        ("example.com/reduce-worker", "reduce-worker"),
        ("busybox", "busybox"),
        ("example.com/~user/app_v1", "app-v1"),
        ("example.com/app.v2", "app-v2"),
        ("example.com/a__b..c", "a-b-c"),
        ("example.com/app/", "app"),
        ("example.com/_app_", "app"),
        ("Example.com/MyApp", "myapp"),
    ],
)
def test_app_name_from_image(image: str, app: str) -> None:
    assert app_name_from_image(image) == app
    assert is_ac_name(app)


@pytest.mark.parametrize("image", ["", "/", "example.com/___"])
def test_app_name_from_image_impossible(image: str) -> None:
    with pytest.raises(UsageError):
        app_name_from_image(image)


@pytest.mark.parametrize(
    ("text", "name", "labels"),
    [
        ("example.com/app", "example.com/app", {}),
        ("example.com/app:1.0", "example.com/app", {"version": "1.0"}),
        ("example.com/app:1.0,os=linux", "example.com/app", {"version": "1.0", "os": "linux"}),
        ("example.com/app,os=linux,arch=amd64", "example.com/app", {"os": "linux", "arch": "amd64"}),
        ("example.com/app,version=latest,env=canary", "example.com/app", {"version": "latest", "env": "canary"}),
        ("example.com/app:v1.0-rc.1+build", "example.com/app", {"version": "v1.0-rc.1+build"}),
    ],
)
def test_parse_image_reference(text: str, name: str, labels: dict[str, str]) -> None:
    assert parse_image_reference(text) == (name, labels)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Example.com/app",
        "example.com/app:",
        "example.com/app:1:2",
        ":1.0",
        "example.com/app,",
        "example.com/app,os",
        "example.com/app,os=",
        "example.com/app,=linux",
        "example.com/app,OS=linux",
        "example.com/app,name=x",
        "example.com/app:1.0,version=2.0",
        "example.com/app,os=linux,os=linux",
        "example.com/app,os=plan9",
        "example.com/app,arch=amd64",
        "example.com/app,os=linux,arch=sparc",
        " example.com/app",
    ],
)
def test_parse_image_reference_rejects(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_image_reference(text)
    assert info.value.hint


# spec/types.md's patterns: the hand-written checks must agree with them on every string.
AC_IDENTIFIER_PATTERN = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")
AC_NAME_PATTERN = re.compile(r"^[a-z0-9]+([-][a-z0-9]+)*$")
TRICKY = "a0-._~/Z \n:+é"


def strings(alphabet: str, *, exhaustive_up_to: int, samples: int, longest: int) -> list[str]:
    """Every string of `alphabet` up to a length, then random longer ones (seeded)."""
    found = ["".join(chars) for n in range(exhaustive_up_to + 1) for chars in itertools.product(alphabet, repeat=n)]
    chance = random.Random(4)
    found += [
        "".join(chance.choice(alphabet) for _index in range(chance.randint(1, longest))) for _sample in range(samples)
    ]
    return found


def test_the_name_checks_agree_with_the_specifications_patterns() -> None:
    for text in strings(TRICKY, exhaustive_up_to=4, samples=20000, longest=24):
        assert is_ac_identifier(text) == bool(AC_IDENTIFIER_PATTERN.fullmatch(text)), repr(text)
        assert is_ac_name(text) == bool(AC_NAME_PATTERN.fullmatch(text)), repr(text)


def test_the_image_id_check_agrees_with_its_pattern() -> None:
    pattern = re.compile(r"^sha512-[0-9a-f]{128}$")
    chance = random.Random(5)
    candidates = [FULL_ID, FULL_ID[:-1], FULL_ID + "0", FULL_ID.upper(), "sha256-" + FULL_ID[7:], FULL_ID + "\n"]
    for _sample in range(2000):
        digest = list(FULL_ID[7:])
        digest[chance.randrange(128)] = chance.choice("0aFg-\n ")
        candidates.append("sha512-" + "".join(digest))
    for text in candidates:
        assert is_full_image_id(text) == bool(pattern.fullmatch(text)), repr(text)


def test_app_names_from_images_agree_with_the_substitution() -> None:
    for image in strings("aZ0-_./é ", exhaustive_up_to=3, samples=5000, longest=16):
        expected = re.sub(r"[^a-z0-9]+", "-", image.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-")
        if expected:
            assert app_name_from_image(image) == expected, repr(image)
        else:
            with pytest.raises(UsageError):
                app_name_from_image(image)
