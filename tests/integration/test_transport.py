"""rocket.transport, rocket.auth and rocket.discovery against real HTTPS and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from httpsserver import Route, Server, redirect
from rocket.auth import AuthConfig, load_auth, trusted_ca_files
from rocket.discovery import discover, load_mirrors
from rocket.errors import FetchError, UsageError
from rocket.transport import HttpClient, client_from_config, parse_max_age

DATA = bytes(range(256)) * 400  # 102400 bytes, every offset distinguishable


@pytest.fixture
def local(tmp_path: Path) -> Path:
    folder = tmp_path / "etc-rocket"
    folder.mkdir()
    return folder


@pytest.fixture
def system(tmp_path: Path) -> Path:
    folder = tmp_path / "usr-lib-rocket"
    folder.mkdir()
    return folder


@pytest.fixture
def server(local: Path) -> Iterator[Server]:
    with Server(ca_dir=local / "certs.d") as running:
        yield running


@pytest.fixture
def plain() -> Iterator[Server]:
    with Server(tls=False) as running:
        yield running


def client_for(server: Server, local: Path, **options: object) -> HttpClient:
    """A client that trusts the test CA from the local config and dials the test server for its names."""
    settings: Dict[str, object] = {
        "ca_files": trusted_ca_files(local),
        "connect_to": server.connect_to(),
        "timeout": 5.0,
    }
    settings.update(options)
    return HttpClient(**settings)  # type: ignore[arg-type]


def reason_of(caught: pytest.ExceptionInfo[FetchError]) -> str:
    return str(caught.value.context["reason"])


def meta(prefix: str, template: str, keys: Optional[str] = None) -> bytes:
    tags = f'<meta name="ac-discovery" content="{prefix} {template}">'
    if keys:
        tags += f'<meta name="ac-discovery-pubkeys" content="{prefix} {keys}">'
    return f"<!DOCTYPE html><html><head><title>x</title>{tags}</head><body></body></html>".encode()


def write_auth(folder: Path, file_name: str, domains: List[str], kind: str, credentials: Dict[str, str]) -> None:
    (folder / "auth.d").mkdir(parents=True, exist_ok=True)
    doc = {"rktKind": "auth", "rktVersion": "v1", "domains": domains, "type": kind, "credentials": credentials}
    (folder / "auth.d" / file_name).write_text(json.dumps(doc))


# --- discovery over the network -------------------------------------------------------------------


def test_discovery_walks_up_to_the_parent_page(server: Server, local: Path) -> None:
    template = server.url("/aci/{name}-{version}-{os}-{arch}.{ext}")
    server.route("/group", Route(body=meta("127.0.0.1/group", template, keys=server.url("/keys.gpg"))))
    endpoints = discover("127.0.0.1/group/app", {"version": "1.0", "arch": "amd64"}, client=client_for(server, local))
    aci = server.url("/aci/127.0.0.1/group/app-1.0-linux-amd64")
    assert endpoints.acis == [(aci + ".aci", aci + ".aci.asc")]
    assert endpoints.keys == [server.url("/keys.gpg")]
    assert [r.path for r in server.requests] == ["/group/app?ac-discovery=1", "/group?ac-discovery=1"]
    assert server.requests[0].host == "127.0.0.1"  # the name's host, port 443 left out


def test_discovery_ignores_a_tag_for_another_prefix(server: Server, local: Path) -> None:
    server.route("/foo", Route(body=meta("127.0.0.1/foobar", server.url("/{name}.{ext}"))))
    with pytest.raises(FetchError) as caught:
        discover("127.0.0.1/foo", {}, client=client_for(server, local))
    assert reason_of(caught) == "not-found"
    attempts = caught.value.context["attempts"]
    assert [url for url, _what in attempts] == [
        "https://127.0.0.1/foo?ac-discovery=1",
        "https://127.0.0.1?ac-discovery=1",
    ]
    assert "does not cover" in attempts[0][1]
    assert "http-status" in attempts[1][1]


def test_discovery_refuses_an_oversized_page(server: Server, local: Path) -> None:
    body = meta("127.0.0.1/big", server.url("/{name}.{ext}")) + b"<!--" + b"x" * 5000 + b"-->"
    server.route("/big", Route(body=body))
    with pytest.raises(FetchError) as caught:
        discover("127.0.0.1/big", {}, client=client_for(server, local), max_page=1000)
    assert reason_of(caught) == "not-found"
    assert caught.value.context["attempts"][0][1].startswith("too-large")


def test_discovery_page_over_plain_http_needs_insecure(server: Server, plain: Server, local: Path) -> None:
    plain.route("/app", Route(body=meta("127.0.0.1/app", server.url("/{name}.{ext}"))))
    connect_to = {"127.0.0.1:80": f"127.0.0.1:{plain.port}", "127.0.0.1:443": f"127.0.0.1:{server.port}"}
    client = client_for(server, local, allow_http=True, connect_to=connect_to)
    with pytest.raises(FetchError):
        discover("127.0.0.1/app", {}, client=client)
    assert plain.requests == []
    endpoints = discover("127.0.0.1/app", {}, client=client, insecure_http=True)
    assert endpoints.source == "http://127.0.0.1/app?ac-discovery=1"


# --- TLS ------------------------------------------------------------------------------------------


def test_tls_fails_without_the_ca(server: Server) -> None:
    server.route("/a", Route(body=b"a"))
    with pytest.raises(FetchError) as caught:
        HttpClient(timeout=5).get(server.url("/a"), max_size=10)
    assert reason_of(caught) == "tls"
    assert caught.value.context["url"] == server.url("/a")
    assert caught.value.hint


def test_tls_succeeds_with_the_ca_from_the_local_config(server: Server, local: Path, system: Path) -> None:
    server.route("/a", Route(body=b"hello"))
    assert trusted_ca_files(local) == [server.ca_file]
    response = client_from_config(local, system).get(server.url("/a"), max_size=10)
    assert (response.status, response.body) == (200, b"hello")


def test_insecure_tls_skips_the_check(server: Server, tmp_path: Path, system: Path) -> None:
    server.route("/a", Route(body=b"hello"))
    assert HttpClient(insecure_tls=True).get(server.url("/a"), max_size=10).body == b"hello"
    bare = tmp_path / "bare"
    bare.mkdir()
    assert client_from_config(bare, system, insecure={"tls"}).get(server.url("/a"), max_size=10).body == b"hello"


def test_a_ca_file_that_is_not_pem_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(UsageError):
        HttpClient(ca_files=[bad])


# --- redirects and plain http ----------------------------------------------------------------------


def test_a_redirect_chain_is_followed(server: Server, local: Path) -> None:
    server.route("/r1", redirect(server.url("/r2"), 301))
    server.route("/r2", redirect("/r3", 302))
    server.route("/r3", redirect("r4", 307))
    server.route("/r4", redirect(server.url("/final", host="localhost"), 308))
    server.route("/final", Route(body=b"done"))
    response = client_for(server, local).get(server.url("/r1"), max_size=10)
    assert response.body == b"done"
    assert response.url == server.url("/final", host="localhost")
    assert [r.path for r in server.requests] == ["/r1", "/r2", "/r3", "/r4", "/final"]


def chain(server: Server, hops: int) -> str:
    for index in range(hops):
        server.route(f"/hop{index}", redirect(f"/hop{index + 1}"))
    server.route(f"/hop{hops}", Route(body=b"end"))
    return server.url("/hop0")


def test_ten_redirects_are_followed(server: Server, local: Path) -> None:
    assert client_for(server, local).get(chain(server, 10), max_size=10).body == b"end"


def test_eleven_redirects_are_refused(server: Server, local: Path) -> None:
    with pytest.raises(FetchError) as caught:
        client_for(server, local).get(chain(server, 11), max_size=10)
    assert reason_of(caught) == "redirects"
    assert len(server.requests) == 11


def test_redirect_loop_is_refused(server: Server, local: Path) -> None:
    server.route("/loop", redirect("/loop"))
    with pytest.raises(FetchError) as caught:
        client_for(server, local, max_redirects=3).get(server.url("/loop"), max_size=10)
    assert reason_of(caught) == "redirects"
    assert len(server.requests) == 4


def test_https_to_http_redirect_is_refused_unless_allowed(server: Server, plain: Server, local: Path) -> None:
    plain.route("/x", Route(body=b"plain"))
    server.route("/down", redirect(plain.url("/x")))
    with pytest.raises(FetchError) as caught:
        client_for(server, local).get(server.url("/down"), max_size=10)
    assert reason_of(caught) == "insecure-http"
    assert plain.requests == []
    assert client_for(server, local, allow_http=True).get(server.url("/down"), max_size=10).body == b"plain"


def test_plain_http_is_refused_unless_allowed(plain: Server) -> None:
    plain.route("/x", Route(body=b"plain"))
    with pytest.raises(FetchError) as caught:
        HttpClient().get(plain.url("/x"), max_size=10)
    assert reason_of(caught) == "insecure-http"
    assert plain.requests == []
    assert HttpClient(allow_http=True).get(plain.url("/x"), max_size=10).body == b"plain"


def test_redirect_to_a_local_file_is_refused(server: Server, local: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("secret")
    server.route("/sneaky", redirect(secret.as_uri()))
    with pytest.raises(FetchError) as caught:
        client_for(server, local).get(server.url("/sneaky"), max_size=100)
    assert reason_of(caught) == "redirects"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "https:///nohost", "https://127.0.0.1:99999/x", "/relative"])
def test_unfetchable_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        HttpClient().get(url, max_size=10)


# --- caching: ETag, Cache-Control ------------------------------------------------------------------


def test_etag_gives_not_modified_without_touching_the_file(server: Server, local: Path, tmp_path: Path) -> None:
    server.route("/img.aci", Route(body=DATA, etag='"v1"', cache_control="public, max-age=600"))
    client = client_for(server, local)
    target = tmp_path / "img.aci"
    first = client.download(server.url("/img.aci"), target, max_size=len(DATA))
    assert (first.status, first.etag, first.max_age, first.size) == ("downloaded", '"v1"', 600, len(DATA))
    before = target.stat().st_mtime_ns
    again = client.download(server.url("/img.aci"), target, max_size=len(DATA), etag=first.etag)
    assert (again.status, again.etag, again.max_age, again.size) == ("not-modified", '"v1"', 600, len(DATA))
    assert target.stat().st_mtime_ns == before
    assert target.read_bytes() == DATA
    assert server.requests[-1].headers["if-none-match"] == '"v1"'
    changed = client.download(server.url("/img.aci"), target, max_size=len(DATA), etag='"v0"')
    assert changed.status == "downloaded"


def test_get_with_if_none_match_returns_304(server: Server, local: Path) -> None:
    server.route("/page", Route(body=b"page", etag='"p"', cache_control="max-age=30"))
    response = client_for(server, local).get(server.url("/page"), max_size=10, headers={"If-None-Match": '"p"'})
    assert (response.status, response.body, response.etag, response.max_age) == (304, b"", '"p"', 30)
    with pytest.raises(FetchError) as caught:  # a 304 nobody asked for is an error
        client_for(server, local).get(server.url("/other304"), max_size=10)
    assert reason_of(caught) == "http-status"


@pytest.mark.parametrize(
    "value, seconds",
    [
        (None, None),
        ("", None),
        ("max-age=60", 60),
        ("public, MAX-AGE=3600", 3600),
        ('max-age="15"', 15),
        ("max-age=60, no-cache", 0),
        ("no-store", 0),
        ("max-age=abc", None),
        ("private", None),
    ],
)
def test_parse_max_age(value: Optional[str], seconds: Optional[int]) -> None:
    assert parse_max_age(value) == seconds


# --- resuming, size caps, timeouts ----------------------------------------------------------------


def test_a_broken_download_resumes_with_range(server: Server, local: Path, tmp_path: Path) -> None:
    server.route("/img.aci", Route(body=DATA, etag='"v1"', drop_after=40000, chunk_size=8192))
    client = client_for(server, local)
    target = tmp_path / "img.aci"
    with pytest.raises(FetchError) as caught:
        client.download(server.url("/img.aci"), target, max_size=len(DATA))
    assert reason_of(caught) == "connection"
    part = tmp_path / "img.aci.part"
    assert part.stat().st_size == 40000 and not target.exists()
    seen: List[Tuple[int, Optional[int]]] = []
    result = client.download(server.url("/img.aci"), target, max_size=len(DATA), progress=lambda *a: seen.append(a))
    assert (result.status, result.size, result.etag) == ("resumed", len(DATA), '"v1"')
    assert target.read_bytes() == DATA
    assert not part.exists() and not list(tmp_path.glob("*.validator"))
    second = server.requests[-1].headers
    assert (second["range"], second["if-range"]) == ("bytes=40000-", '"v1"')
    assert seen[0] == (40000, len(DATA)) and seen[-1] == (len(DATA), len(DATA))


def test_a_changed_file_restarts_from_zero(server: Server, local: Path, tmp_path: Path) -> None:
    server.route("/img.aci", Route(body=DATA, etag='"v1"', drop_after=30000))
    client = client_for(server, local)
    target = tmp_path / "img.aci"
    with pytest.raises(FetchError):
        client.download(server.url("/img.aci"), target, max_size=len(DATA))
    new = DATA[::-1]
    server.route("/img.aci", Route(body=new, etag='"v2"'))
    result = client.download(server.url("/img.aci"), target, max_size=len(DATA))
    assert (result.status, result.etag) == ("downloaded", '"v2"')
    assert target.read_bytes() == new
    assert server.requests[-1].headers["if-range"] == '"v1"'


def test_a_part_without_validator_is_not_resumed(server: Server, local: Path, tmp_path: Path) -> None:
    server.route("/img.aci", Route(body=DATA))
    (tmp_path / "img.aci.part").write_bytes(b"stale bytes from who knows where")
    result = client_for(server, local).download(server.url("/img.aci"), tmp_path / "img.aci", max_size=len(DATA))
    assert result.status == "downloaded"
    assert (tmp_path / "img.aci").read_bytes() == DATA
    assert "range" not in server.requests[-1].headers


def test_size_cap_on_announced_length(server: Server, local: Path, tmp_path: Path) -> None:
    server.route("/big", Route(body=DATA))
    client = client_for(server, local)
    with pytest.raises(FetchError) as caught:
        client.get(server.url("/big"), max_size=1000)
    assert reason_of(caught) == "too-large"
    with pytest.raises(FetchError) as caught:
        client.download(server.url("/big"), tmp_path / "big", max_size=1000)
    assert reason_of(caught) == "too-large"
    assert list(tmp_path.glob("big*")) == []


def test_size_cap_when_the_server_lies_or_says_nothing(server: Server, local: Path, tmp_path: Path) -> None:
    server.route("/unsaid", Route(body=b"", fill=200_000, send_length=False))
    server.route("/lie", Route(body=b"tiny", fill=200_000))  # announces 4 bytes, sends more
    client = client_for(server, local)
    with pytest.raises(FetchError) as caught:
        client.get(server.url("/unsaid"), max_size=1000)
    assert reason_of(caught) == "too-large"
    with pytest.raises(FetchError) as caught:
        client.download(server.url("/unsaid"), tmp_path / "x", max_size=1000)
    assert reason_of(caught) == "too-large"
    assert list(tmp_path.glob("x*")) == []
    assert client.get(server.url("/lie"), max_size=1000).body == b"tiny"  # http.client stops at the length


def test_timeout_waiting_for_an_answer(server: Server, local: Path, tmp_path: Path) -> None:
    server.route("/slow", Route(body=b"late", delay=5))
    client = client_for(server, local, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        client.get(server.url("/slow"), max_size=10)
    assert reason_of(caught) == "timeout"
    with pytest.raises(FetchError) as caught:
        client.download(server.url("/slow"), tmp_path / "slow", max_size=10)
    assert reason_of(caught) == "timeout"
    assert time.monotonic() - started < 3


def test_get_bounds_the_whole_exchange(server: Server, local: Path) -> None:
    # Every chunk comes within the timeout, but the page as a whole would take 2 s.
    server.route("/trickle", Route(body=b"x" * 10, chunk_size=1, chunk_delay=0.2))
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        client_for(server, local, timeout=0.6).get(server.url("/trickle"), max_size=100)
    assert reason_of(caught) == "timeout"
    assert time.monotonic() - started < 1.5


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError) as caught:
        HttpClient(timeout=2).get(f"https://127.0.0.1:{port}/x", max_size=10)
    assert reason_of(caught) == "connection"


@pytest.mark.parametrize("status, hint_word", [(404, "name"), (500, "later"), (401, "auth.d")])
def test_http_status_errors(server: Server, local: Path, status: int, hint_word: str) -> None:
    server.route("/e", Route(body=b"no", status=status))
    with pytest.raises(FetchError) as caught:
        client_for(server, local).get(server.url("/e"), max_size=10)
    assert reason_of(caught) == "http-status"
    assert caught.value.context["status"] == status
    assert hint_word in caught.value.hint


# --- file:// (the mirror map of an air-gapped site) -----------------------------------------------


def test_file_urls_are_read_locally_with_the_size_cap(tmp_path: Path) -> None:
    source = tmp_path / "srv" / "example.com" / "app-latest.aci"
    source.parent.mkdir(parents=True)
    source.write_bytes(DATA)
    client = HttpClient()
    assert client.get(source.as_uri(), max_size=len(DATA)).body == DATA
    result = client.download(source.as_uri(), tmp_path / "copy.aci", max_size=len(DATA))
    assert (result.status, result.size) == ("downloaded", len(DATA))
    assert (tmp_path / "copy.aci").read_bytes() == DATA
    with pytest.raises(FetchError) as caught:
        client.get(source.as_uri(), max_size=100)
    assert reason_of(caught) == "too-large"
    with pytest.raises(FetchError) as caught:
        client.get((tmp_path / "missing.aci").as_uri(), max_size=100)
    assert reason_of(caught) == "not-found"


def test_discovery_through_a_file_mirror(tmp_path: Path, local: Path) -> None:
    (local / "mirrors.json").write_text(
        json.dumps(
            {"mirrors": [{"prefix": "example.com", "aci": f"file://{tmp_path}/srv/{{name}}-{{version}}.{{ext}}"}]}
        )
    )
    endpoints = discover("example.com/app", {}, client=HttpClient(), mirrors=load_mirrors(local))
    assert endpoints.acis == [
        (f"file://{tmp_path}/srv/example.com/app-latest.aci", f"file://{tmp_path}/srv/example.com/app-latest.aci.asc")
    ]


# --- credentials -----------------------------------------------------------------------------------


def test_basic_and_bearer_go_to_their_own_hosts(server: Server, local: Path, system: Path) -> None:
    write_auth(local, "ip.json", [f"127.0.0.1:{server.port}"], "basic", {"user": "foo", "password": "bar"})
    write_auth(local, "name.json", [f"LOCALHOST:{server.port}"], "oauth", {"token": "tok"})
    server.route("/a", Route(body=b"a"))
    client = client_for(server, local, auth=load_auth(local, system))
    client.get(server.url("/a"), max_size=10)
    client.get(server.url("/a", host="localhost"), max_size=10)
    assert [r.headers.get("authorization") for r in server.requests] == ["Basic Zm9vOmJhcg==", "Bearer tok"]


def test_credentials_do_not_follow_a_redirect_to_another_host(server: Server, local: Path, system: Path) -> None:
    write_auth(local, "ip.json", [f"127.0.0.1:{server.port}"], "basic", {"user": "foo", "password": "bar"})
    server.route("/start", redirect(server.url("/same")))
    server.route("/same", redirect(server.url("/elsewhere", host="localhost")))
    server.route("/elsewhere", Route(body=b"x"))
    client = client_for(server, local, auth=load_auth(local, system))
    client.get(server.url("/start"), max_size=10, headers={"Authorization": "Bearer mine", "X-Trace": "1"})
    sent = {r.path: r.headers for r in server.requests}
    assert sent["/start"]["authorization"] == "Basic Zm9vOmJhcg=="
    assert sent["/same"]["authorization"] == "Basic Zm9vOmJhcg=="
    assert "authorization" not in sent["/elsewhere"]
    assert sent["/elsewhere"]["x-trace"] == "1"


def test_credentials_never_go_over_plain_http(server: Server, plain: Server, local: Path, system: Path) -> None:
    domains = [f"127.0.0.1:{plain.port}", f"127.0.0.1:{server.port}", "127.0.0.1"]
    write_auth(local, "all.json", domains, "oauth", {"token": "tok"})
    plain.route("/x", Route(body=b"x"))
    server.route("/down", redirect(plain.url("/x")))
    client = client_for(server, local, auth=load_auth(local, system), allow_http=True)
    client.get(plain.url("/x"), max_size=10)
    client.get(server.url("/down"), max_size=10)
    assert server.requests[0].headers["authorization"] == "Bearer tok"
    assert [r.headers.get("authorization") for r in plain.requests] == [None, None]


def test_local_auth_wins_per_domain(local: Path, system: Path) -> None:
    write_auth(system, "vendor.json", ["a.test", "b.test"], "oauth", {"token": "s3cret"})
    write_auth(local, "mine.json", ["a.test:443"], "basic", {"user": "u", "password": "p"})
    (system / "auth.d" / "docker.json").write_text(json.dumps({"rktKind": "dockerAuth", "rktVersion": "v1"}))
    (local / "auth.d" / "README").write_text("not json, not read")
    auth = load_auth(local, system)
    assert auth.domains() == ["a.test", "b.test"]
    assert auth.headers_for("https://a.test/x") == {"Authorization": "Basic dTpw"}
    assert auth.headers_for("https://B.TEST:443/x") == {"Authorization": "Bearer s3cret"}
    assert auth.headers_for("http://b.test/x") == {}
    assert auth.headers_for("https://b.test:8443/x") == {}
    assert auth.headers_for("https://c.test/x") == {}
    assert "s3cret" not in repr(auth)


def test_a_domain_in_two_files_of_one_folder_is_an_error(local: Path, system: Path) -> None:
    write_auth(local, "one.json", ["a.test"], "oauth", {"token": "1"})
    write_auth(local, "two.json", ["A.test:443"], "oauth", {"token": "2"})
    with pytest.raises(UsageError) as caught:
        load_auth(local, system)
    assert caught.value.context["file"] == str(local / "auth.d" / "two.json")


@pytest.mark.parametrize(
    "doc, field",
    [
        ([], "(file)"),
        ({"rktVersion": "v1"}, "rktKind"),
        ({"rktKind": "paths", "rktVersion": "v1"}, "rktKind"),
        ({"rktKind": "auth", "rktVersion": "v2"}, "rktVersion"),
        ({"rktKind": "auth", "rktVersion": "v1", "type": "digest"}, "type"),
        (
            {"rktKind": "auth", "rktVersion": "v1", "type": "basic", "credentials": {"user": "u"}},
            "credentials.password",
        ),
        (
            {"rktKind": "auth", "rktVersion": "v1", "type": "basic", "credentials": {"user": "a:b", "password": "p"}},
            "credentials.user",
        ),
        (
            {"rktKind": "auth", "rktVersion": "v1", "type": "oauth", "credentials": {"token": "a b"}},
            "credentials.token",
        ),
        (
            {"rktKind": "auth", "rktVersion": "v1", "type": "oauth", "credentials": {"token": "t", "x": 1}},
            "credentials.x",
        ),
        ({"rktKind": "auth", "rktVersion": "v1", "type": "oauth", "credentials": {"token": "t"}}, "domains"),
        (
            {"rktKind": "auth", "rktVersion": "v1", "type": "oauth", "credentials": {"token": "t"}, "domains": []},
            "domains",
        ),
        (
            {"rktKind": "auth", "rktVersion": "v1", "type": "oauth", "credentials": {"token": "t"}, "domains": ["a/b"]},
            "domains[0]",
        ),
        (
            {
                "rktKind": "auth",
                "rktVersion": "v1",
                "type": "oauth",
                "credentials": {"token": "t"},
                "domains": ["a"],
                "extra": 1,
            },
            "extra",
        ),
    ],
)
def test_bad_auth_files_name_file_and_field(local: Path, system: Path, doc: object, field: str) -> None:
    (local / "auth.d").mkdir()
    (local / "auth.d" / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError) as caught:
        load_auth(local, system)
    assert caught.value.context == {"file": str(local / "auth.d" / "bad.json"), "field": field}


def test_empty_auth_config_sends_nothing() -> None:
    assert AuthConfig().headers_for("https://example.com/") == {}
