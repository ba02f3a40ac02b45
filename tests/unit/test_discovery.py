"""Tests for rocket.discovery: meta tags, prefixes, templates and defaults, the mirror map, the walk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from rocket.discovery import (
    MetaTag,
    Mirror,
    MirrorMap,
    check_request,
    discover,
    discovery_labels,
    discovery_levels,
    endpoints_from_tags,
    fill_template,
    host_arch,
    load_mirrors,
    mirror_endpoints,
    parse_meta,
    prefix_covers,
)
from rocket.errors import FetchError, UsageError
from rocket.transport import HttpClient, Response, fetch_error


def vectors_dir() -> Path:
    """The shared test vectors: $ROCKET_VECTORS, else the `shared/vectors` folder beside the repository."""
    override = os.environ.get("ROCKET_VECTORS")
    return Path(override) if override else Path(__file__).parents[3] / "shared" / "vectors"


DISCOVERY = vectors_dir() / "appc" / "discovery"
NAME = "example.com/reduce-worker"
LABELS = {"version": "1.0.0", "os": "linux", "arch": "amd64"}
STORAGE = "https://storage.example.com/{name}-{version}-{os}-{arch}.{ext}"
SHORT = "https://storage.example.com/{name}-{version}.{ext}"
KEYS = "https://example.com/pubkeys.gpg"
FULL_ACI = "https://storage.example.com/example.com/reduce-worker-1.0.0-linux-amd64"

# What each page of the specification's examples holds, and what it yields for NAME and LABELS.
VECTORS = {
    "meta01.html": (
        [("ac-discovery", STORAGE), ("ac-discovery-pubkeys", KEYS)],
        [(FULL_ACI + ".aci", FULL_ACI + ".aci.asc")],
        [KEYS],
    ),
    "meta02.html": ([("ac-discovery", STORAGE)], [(FULL_ACI + ".aci", FULL_ACI + ".aci.asc")], []),
    "meta03.html": ([("ac-discovery-pubkeys", KEYS)], [], [KEYS]),
    "meta04.html": (
        [("ac-discovery", STORAGE.replace("//storage", "//another.storage")), ("ac-discovery-pubkeys", KEYS)],
        [
            (
                FULL_ACI.replace("//storage", "//another.storage") + ".aci",
                FULL_ACI.replace("//storage", "//another.storage") + ".aci.asc",
            )
        ],
        [KEYS],
    ),
    # Two templates: only the best matching one (more labels filled, spec/discovery.md) is kept.
    "meta05.html": (
        [("ac-discovery", STORAGE), ("ac-discovery", SHORT), ("ac-discovery-pubkeys", KEYS)],
        [(FULL_ACI + ".aci", FULL_ACI + ".aci.asc")],
        [KEYS],
    ),
    # An hdfs template as well: rocket fetches https only, so it is skipped.
    "meta06.html": (
        [
            ("ac-discovery", STORAGE),
            ("ac-discovery", SHORT),
            ("ac-discovery", STORAGE.replace("https:", "hdfs:")),
            ("ac-discovery-pubkeys", KEYS),
        ],
        [(FULL_ACI + ".aci", FULL_ACI + ".aci.asc")],
        [KEYS],
    ),
}


def test_vectors_present() -> None:
    assert DISCOVERY.is_dir(), f"test vectors missing at {DISCOVERY} (set ROCKET_VECTORS)"
    assert sorted(p.name for p in DISCOVERY.glob("meta*.html")) == sorted(VECTORS)


@pytest.mark.parametrize("page", sorted(VECTORS))
def test_vector_pages_parse(page: str) -> None:
    tags, acis, keys = VECTORS[page]
    parsed = parse_meta((DISCOVERY / page).read_bytes())
    assert parsed == [MetaTag(name, "example.com", url) for name, url in tags]
    endpoints, _notes = endpoints_from_tags(parsed, NAME, LABELS)
    assert endpoints.acis == acis
    assert endpoints.keys == keys


def test_vector_page_with_unsupported_scheme_says_why() -> None:
    _endpoints, notes = endpoints_from_tags(parse_meta((DISCOVERY / "meta06.html").read_bytes()), NAME, LABELS)
    assert any("hdfs://" in note and "unsupported scheme" in note for note in notes)


# --- parse_meta ------------------------------------------------------------------------------------


def page(*metas: str, body: str = "") -> bytes:
    return ("<html><head>" + "".join(metas) + "</head><body>" + body + "</body></html>").encode()


def test_parse_meta_ignores_other_and_malformed_tags() -> None:
    html = page(
        '<meta name="description" content="example.com https://x/{ext}">',
        '<meta name="ac-discovery" content="example.com">',
        '<meta name="ac-discovery" content="a b c">',
        '<meta charset="utf-8">',
        '<META NAME="AC-Discovery" CONTENT="  example.com   https://x/{name}.{ext} ">',
        '<meta name="ac-discovery-pubkeys" content="example.com https://x/k?a=1&amp;b=2"/>',
    )
    assert parse_meta(html) == [
        MetaTag("ac-discovery", "example.com", "https://x/{name}.{ext}"),
        MetaTag("ac-discovery-pubkeys", "example.com", "https://x/k?a=1&b=2"),
    ]


def test_parse_meta_reads_the_head_only() -> None:
    # Text in a page body may come from anyone (a wiki, a forum): tags there do not count.
    html = page(body='<meta name="ac-discovery" content="example.com https://evil.test/{name}.{ext}">')
    assert parse_meta(html) == []


@pytest.mark.parametrize("html", [b"", b"<html", b"\xff\xfe<meta", b"<<<>>>", b"<meta name=ac-discovery content>"])
def test_parse_meta_survives_garbage(html: bytes) -> None:
    assert parse_meta(html) == []


# --- prefixes, labels, templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix, name, covers",
    [
        ("example.com", "example.com", True),
        ("example.com", "example.com/foo", True),
        ("example.com/foo", "example.com/foo", True),
        ("example.com/foo", "example.com/foo/bar", True),
        ("example.com/foo/", "example.com/foo/bar", True),
        ("example.com/foo", "example.com/foobar", False),
        ("example.com/foo", "example.com", False),
        ("example.com", "example.com.evil.test/app", False),
        ("example", "example.com/app", False),
        ("", "example.com", False),
    ],
)
def test_prefix_covers_whole_components(prefix: str, name: str, covers: bool) -> None:
    assert prefix_covers(prefix, name) is covers


@pytest.mark.parametrize(
    "machine, arch",
    [("x86_64", "amd64"), ("AMD64", "amd64"), ("i686", "i386"), ("aarch64", "aarch64"), ("arm64", "aarch64")]
    + [("armv7l", "armv7l"), ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64")],
)
def test_host_arch_uses_appc_names(machine: str, arch: str) -> None:
    assert host_arch(machine) == arch


def test_discovery_labels_defaults() -> None:
    assert discovery_labels({}) == {"version": "latest", "os": "linux", "arch": host_arch()}
    given = {"version": "2", "os": "freebsd", "arch": "arm", "channel": "beta"}
    assert discovery_labels(given) == given


@pytest.mark.parametrize(
    "template, labels, expected",
    [
        (STORAGE, LABELS, FULL_ACI + ".aci"),
        ("https://s/{name}.{ext}", {}, "https://s/example.com/reduce-worker.aci"),
        ("https://s/{channel}/{name}.{ext}", {"channel": "beta"}, "https://s/beta/example.com/reduce-worker.aci"),
        ("https://s/{channel}/{name}.{ext}", {}, None),
        ("https://s/{name}-{version}.{ext}", {}, None),
        (
            "https://s/{name}-{version}.{ext}",
            {"version": "1.0+git 2"},
            "https://s/example.com/reduce-worker-1.0+git%202.aci",
        ),
        (
            "https://s/{name}.{ext}?v={version}",
            discovery_labels({}),
            "https://s/example.com/reduce-worker.aci?v=latest",
        ),
        ("https://s/{}.{ext}", {}, None),
    ],
)
def test_fill_template(template: str, labels: Dict[str, str], expected: Optional[str]) -> None:
    assert fill_template(template, NAME, labels, "aci") == expected


def test_unfilled_template_is_skipped_with_a_note() -> None:
    tags = [MetaTag("ac-discovery", "example.com", "https://s/{channel}/{name}.{ext}")]
    endpoints, notes = endpoints_from_tags(tags, NAME, discovery_labels({}))
    assert endpoints.acis == []
    assert any("channel" in note for note in notes)
    endpoints, _ = endpoints_from_tags(tags, NAME, discovery_labels({"channel": "beta"}))
    assert endpoints.acis == [
        ("https://s/beta/example.com/reduce-worker.aci", "https://s/beta/example.com/reduce-worker.aci.asc")
    ]


def test_defaults_fill_version_os_and_arch() -> None:
    tags = [MetaTag("ac-discovery", "example.com", STORAGE)]
    endpoints, _ = endpoints_from_tags(tags, NAME, discovery_labels({}))
    base = f"https://storage.example.com/{NAME}-latest-linux-{host_arch()}"
    assert endpoints.acis == [(base + ".aci", base + ".aci.asc")]


def test_best_matching_templates_keep_page_order() -> None:
    tags = [
        MetaTag("ac-discovery", "example.com", "https://a/{name}-{version}.{ext}"),
        MetaTag("ac-discovery", "example.com", "https://b/{os}/{arch}/{name}-{version}.{ext}"),
        MetaTag("ac-discovery", "example.com", "https://c/{os}/{arch}/{name}-{version}.{ext}"),
    ]
    endpoints, _ = endpoints_from_tags(tags, NAME, LABELS)
    assert [aci for aci, _asc in endpoints.acis] == [
        f"https://b/linux/amd64/{NAME}-1.0.0.aci",
        f"https://c/linux/amd64/{NAME}-1.0.0.aci",
    ]


def test_tags_for_other_prefixes_are_ignored() -> None:
    tags = [
        MetaTag("ac-discovery", "example.com/foobar", "https://wrong/{name}.{ext}"),
        MetaTag("ac-discovery-pubkeys", "example.com/foobar", "https://wrong/keys"),
        MetaTag("ac-discovery", "example.com/foo", "https://right/{name}.{ext}"),
    ]
    endpoints, notes = endpoints_from_tags(tags, "example.com/foo/app", {})
    assert endpoints.acis == [("https://right/example.com/foo/app.aci", "https://right/example.com/foo/app.aci.asc")]
    assert endpoints.keys == []
    assert sum("does not cover" in note for note in notes) == 2


@pytest.mark.parametrize(
    "url, insecure_http, kept",
    [
        ("https://s/{name}.{ext}", False, True),
        ("http://s/{name}.{ext}", False, False),
        ("http://s/{name}.{ext}", True, True),
        ("file:///etc/{name}.{ext}", True, False),
        ("ftp://s/{name}.{ext}", True, False),
        ("https://s/{name}.aci", False, False),
    ],
)
def test_page_templates_need_a_fetchable_scheme_and_ext(url: str, insecure_http: bool, kept: bool) -> None:
    tags = [MetaTag("ac-discovery", "example.com", url), MetaTag("ac-discovery-pubkeys", "example.com", url)]
    endpoints, notes = endpoints_from_tags(tags, NAME, {}, insecure_http=insecure_http)
    assert bool(endpoints.acis) is kept
    assert notes or kept


@pytest.mark.parametrize(
    "name, labels",
    [
        ("Example.com/app", {}),
        ("example.com/../app", {}),
        ("", {}),
        (NAME, {"version": "../../etc"}),
        (NAME, {"version": ".."}),
        (NAME, {"version": ""}),
        (NAME, {"version": "1\n2"}),
        (NAME, {"name": "x"}),
        (NAME, {"Bad": "x"}),
    ],
)
def test_check_request_refuses(name: str, labels: Dict[str, str]) -> None:
    with pytest.raises(UsageError):
        check_request(name, labels)


def test_discovery_levels_walk_up() -> None:
    assert discovery_levels("example.com/a/b") == ["example.com/a/b", "example.com/a", "example.com"]
    assert discovery_levels("example.com") == ["example.com"]


# --- the mirror map --------------------------------------------------------------------------------


def write_mirrors(folder: Path, doc: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mirrors.json").write_text(json.dumps(doc))
    return folder


MIRRORS = {
    "mirrors": [
        {
            "prefix": "example.com/foo",
            "aci": "https://mirror.test/{name}-{version}-{os}-{arch}.{ext}",
            "pubkeys": "https://mirror.test/pubkeys.gpg",
        },
        {"prefix": "example.com", "aci": "file:///srv/aci/{name}-{version}.{ext}"},
    ]
}


def test_missing_mirror_file_is_an_empty_map(tmp_path: Path) -> None:
    assert load_mirrors(tmp_path).mirrors == []
    assert load_mirrors(tmp_path).lookup(NAME) is None


@pytest.mark.parametrize(
    "name, prefix",
    [
        ("example.com/foo", "example.com/foo"),
        ("example.com/foo/bar", "example.com/foo"),
        ("example.com/foobar", "example.com"),
        ("example.com", "example.com"),
        ("example.org/foo", None),
    ],
)
def test_mirror_lookup_takes_the_most_specific_prefix(tmp_path: Path, name: str, prefix: Optional[str]) -> None:
    found = load_mirrors(write_mirrors(tmp_path, MIRRORS)).lookup(name)
    assert (found.prefix if found else None) == prefix


def test_mirror_endpoints_fill_templates() -> None:
    mirror = Mirror(**MIRRORS["mirrors"][0])
    endpoints = mirror_endpoints(mirror, "example.com/foo/app", discovery_labels({"version": "3", "arch": "amd64"}))
    base = "https://mirror.test/example.com/foo/app-3-linux-amd64"
    assert endpoints.acis == [(base + ".aci", base + ".aci.asc")]
    assert endpoints.keys == ["https://mirror.test/pubkeys.gpg"]
    local = mirror_endpoints(Mirror(**MIRRORS["mirrors"][1]), "example.com/bar", discovery_labels({}))
    assert local.acis == [
        ("file:///srv/aci/example.com/bar-latest.aci", "file:///srv/aci/example.com/bar-latest.aci.asc")
    ]
    assert local.keys == []


@pytest.mark.parametrize(
    "doc, field",
    [
        ([], "mirrors"),
        ({"mirrors": {}}, "mirrors"),
        ({"mirrors": [], "extra": 1}, "mirrors"),
        ({"mirrors": ["x"]}, "mirrors[0]"),
        ({"mirrors": [{"aci": "https://m/{name}.{ext}"}]}, "mirrors[0].prefix"),
        ({"mirrors": [{"prefix": "Example.com", "aci": "https://m/{name}.{ext}"}]}, "mirrors[0].prefix"),
        ({"mirrors": [{"prefix": "example.com"}]}, "mirrors[0]"),
        ({"mirrors": [{"prefix": "example.com", "aci": "https://m/{name}.aci"}]}, "mirrors[0].aci"),
        ({"mirrors": [{"prefix": "example.com", "aci": "hdfs://m/{name}.{ext}"}]}, "mirrors[0].aci"),
        ({"mirrors": [{"prefix": "example.com", "pubkeys": 7}]}, "mirrors[0].pubkeys"),
        ({"mirrors": [{"prefix": "example.com", "pubkeys": "https://k", "url": "x"}]}, "mirrors[0].url"),
        (
            {"mirrors": [{"prefix": "a", "pubkeys": "https://k"}, {"prefix": "a", "pubkeys": "https://k"}]},
            "mirrors[1].prefix",
        ),
    ],
)
def test_bad_mirror_files_name_file_and_field(tmp_path: Path, doc: object, field: str) -> None:
    with pytest.raises(UsageError) as caught:
        load_mirrors(write_mirrors(tmp_path, doc))
    assert caught.value.context["field"] == field
    assert caught.value.context["file"] == str(tmp_path / "mirrors.json")


def test_mirror_file_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "mirrors.json").write_text("{not json")
    with pytest.raises(UsageError) as caught:
        load_mirrors(tmp_path)
    assert caught.value.context["file"] == str(tmp_path / "mirrors.json")


# --- the walk, with a stand-in client --------------------------------------------------------------


class FakeClient(HttpClient):
    """Answers discovery URLs from a table: bytes are a page, a string is a FetchError reason."""

    def __init__(self, pages: Dict[str, object]) -> None:
        super().__init__()
        self.pages = pages
        self.asked: List[str] = []

    def get(self, url: str, *, max_size: int, headers: Optional[Dict[str, str]] = None) -> Response:
        self.asked.append(url)
        answer = self.pages.get(url, "http-status")
        if isinstance(answer, str):
            raise fetch_error(answer, url, f"failed with {answer}")
        assert isinstance(answer, bytes) and len(answer) <= max_size
        return Response(200, url, {}, answer)


GOOD = page(
    '<meta name="ac-discovery" content="example.com https://s/{name}-{version}.{ext}">',
    '<meta name="ac-discovery-pubkeys" content="example.com https://s/keys">',
)


def url_of(level: str, scheme: str = "https") -> str:
    return f"{scheme}://{level}?ac-discovery=1"


def test_discover_walks_up_until_a_page_matches() -> None:
    client = FakeClient(
        {
            url_of("example.com/a/b"): "timeout",
            url_of("example.com/a"): page(
                '<meta name="ac-discovery" content="example.com/a/bc https://x/{name}.{ext}">'
            ),
            url_of("example.com"): GOOD,
        }
    )
    endpoints = discover("example.com/a/b", {"version": "1"}, client=client)
    assert client.asked == [url_of("example.com/a/b"), url_of("example.com/a"), url_of("example.com")]
    assert endpoints.acis == [("https://s/example.com/a/b-1.aci", "https://s/example.com/a/b-1.aci.asc")]
    assert endpoints.source == url_of("example.com")


def test_discover_keys_walks_past_pages_without_keys() -> None:
    images_only = page('<meta name="ac-discovery" content="example.com https://s/{name}.{ext}">')
    client = FakeClient({url_of("example.com/a"): images_only, url_of("example.com"): GOOD})
    assert discover("example.com/a", {}, client=client, want="keys").keys == ["https://s/keys"]
    assert client.asked == [url_of("example.com/a"), url_of("example.com")]


def test_discover_not_found_lists_every_try() -> None:
    client = FakeClient({url_of("example.com/a"): "tls", url_of("example.com"): page()})
    with pytest.raises(FetchError) as caught:
        discover("example.com/a", {}, client=client)
    error = caught.value
    assert error.context["reason"] == "not-found"
    assert [url for url, _what in error.context["attempts"]] == [url_of("example.com/a"), url_of("example.com")]
    assert error.context["attempts"][0][1].startswith("tls:")
    assert "no usable ac-discovery tag" in error.context["attempts"][1][1]
    assert url_of("example.com/a") in error.message


def test_discover_falls_back_to_http_only_when_allowed() -> None:
    pages: Dict[str, object] = {url_of("example.com"): "connection", url_of("example.com", "http"): GOOD}
    with pytest.raises(FetchError):
        discover("example.com", {}, client=FakeClient(pages))
    client = FakeClient(pages)
    assert discover("example.com", {}, client=client, insecure_http=True).source == url_of("example.com", "http")
    assert client.asked == [url_of("example.com"), url_of("example.com", "http")]


def test_discover_with_a_mirror_asks_no_page(tmp_path: Path) -> None:
    client = FakeClient({})
    mirrors = load_mirrors(write_mirrors(tmp_path, MIRRORS))
    endpoints = discover("example.com/foo/app", {"arch": "amd64"}, client=client, mirrors=mirrors)
    assert endpoints.acis[0][0] == "https://mirror.test/example.com/foo/app-latest-linux-amd64.aci"
    assert client.asked == []
    with pytest.raises(FetchError) as caught:
        discover("example.com/bar", {}, client=client, mirrors=mirrors, want="keys")
    assert caught.value.context["reason"] == "not-found"
    assert client.asked == []


def test_discover_without_a_covering_mirror_discovers() -> None:
    client = FakeClient({url_of("example.org"): GOOD.replace(b"example.com", b"example.org")})
    mirrors = MirrorMap([Mirror("example.com", aci="https://m/{name}.{ext}")])
    assert discover("example.org", {}, client=client, mirrors=mirrors).acis


def test_discover_refuses_a_bad_request_before_any_fetch() -> None:
    client = FakeClient({})
    with pytest.raises(UsageError):
        discover(NAME, {"version": "../x"}, client=client)
    assert client.asked == []
