"""The metadata service over real sockets: every endpoint, authentication, HMAC, latency, and a listening
socket made inside a network namespace that only processes in that namespace can reach."""

from __future__ import annotations

import array
import base64
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import pytest

from rocket import metadata
from rocket.errors import RocketError
from rocket.metadata import JSON_TYPE, TEXT_TYPE, AppMetadata, MetadataService

POD_A = "6c3b2e9e-1d4c-4b53-9a8e-2f1d4e5a6b7c"
POD_B = "0f6d1c52-7e0a-4c1e-8d9b-3a2b1c0d9e8f"
IMAGE_ID = "sha512-" + "ab" * 64
KEY = bytes(range(64))

# Spacing and key order are deliberate: the manifests must come back byte for byte.
POD_MANIFEST = b"""{
  "acVersion": "0.8.11", "acKind": "PodManifest",
  "apps": [
    {"name": "web", "image": {"id": "%s"},
     "annotations": [{"name": "b", "value": "from-pod"}, {"name": "c", "value": "3"}]},
    {"name": "worker", "image": {"id": "%s"}}
  ],
  "annotations": [{"name": "team", "value": "\\u00e9t\\u00e9"}, {"name": "tier", "value": "front"}]
}""" % (IMAGE_ID.encode(), IMAGE_ID.encode())
WEB_IMAGE = (
    b'{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web",\n'
    b'"annotations":[{"name":"a","value":"1"},{"name":"b","value":"2"}]}'
)
WORKER_IMAGE = b'{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/worker"}'
APPS = {"web": AppMetadata(WEB_IMAGE, IMAGE_ID), "worker": AppMetadata(WORKER_IMAGE, "sha512-" + "cd" * 64)}
FLAVOR = {"Metadata-Flavor": "AppContainer"}

Reply = Tuple[int, Optional[str], bytes]


class Running:
    """A service serving on 127.0.0.1:<ephemeral>, with its token."""

    def __init__(self, pod_uuid: str, manifest: bytes = POD_MANIFEST) -> None:
        self.token = metadata.new_token()
        self.service = MetadataService(pod_uuid, self.token, manifest, APPS, KEY)
        self.port = 0
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        self.thread = self.service.serve(listener)

    def request(
        self, method: str, path: str, *, headers: Optional[Dict[str, str]] = None, body: Optional[bytes] = None
    ) -> Reply:
        return request(self.port, method, path, headers=FLAVOR if headers is None else headers, body=body)

    def api(self, method: str, path: str, body: Optional[bytes] = None) -> Reply:
        return self.request(method, f"/{self.token}/acMetadata/v1{path}", body=body)


def request(port: int, method: str, path: str, *, headers: Dict[str, str], body: Optional[bytes] = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        all_headers = dict(headers)
        if body is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


@pytest.fixture
def pod_a() -> Iterator[Running]:
    running = Running(POD_A)
    yield running
    running.service.shutdown()
    assert not running.thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", running.port), timeout=5).close()


@pytest.fixture
def pod_b() -> Iterator[Running]:
    running = Running(POD_B, manifest=b'{"acKind": "PodManifest", "acVersion": "0.8.11", "apps": []}')
    yield running
    running.service.shutdown()


def form(**fields: bytes) -> bytes:
    from urllib.parse import quote_from_bytes

    return b"&".join(f"{name}={quote_from_bytes(value, safe='')}".encode() for name, value in fields.items())


# --- Endpoints ---------------------------------------------------------------------------------------

WEB_ANNOTATIONS = [{"name": "a", "value": "1"}, {"name": "b", "value": "from-pod"}, {"name": "c", "value": "3"}]


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/pod/manifest", JSON_TYPE, POD_MANIFEST),
        ("/pod/uuid", TEXT_TYPE, POD_A.encode()),
        ("/apps/web/image/manifest", JSON_TYPE, WEB_IMAGE),
        ("/apps/worker/image/manifest", JSON_TYPE, WORKER_IMAGE),
        ("/apps/web/image/id", TEXT_TYPE, IMAGE_ID.encode()),
        ("/apps/worker/annotations", JSON_TYPE, b"null"),
    ],
)
def test_exact_bodies(pod_a: Running, path: str, content_type: str, body: bytes) -> None:
    assert pod_a.api("GET", path) == (200, content_type, body)


def test_pod_annotations_mirror_the_manifest(pod_a: Running, pod_b: Running) -> None:
    status, content_type, body = pod_a.api("GET", "/pod/annotations")
    assert (status, content_type) == (200, JSON_TYPE)
    assert json.loads(body) == json.loads(POD_MANIFEST)["annotations"]
    # A manifest without an annotations list gives JSON null, not [].
    assert pod_b.api("GET", "/pod/annotations") == (200, JSON_TYPE, b"null")


def test_app_annotations_overlay_image_by_pod(pod_a: Running) -> None:
    status, content_type, body = pod_a.api("GET", "/apps/web/annotations")
    assert (status, content_type) == (200, JSON_TYPE)
    assert json.loads(body) == WEB_ANNOTATIONS


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ((None, None), None),
        (([], None), []),
        ((None, [{"name": "x", "value": "1"}]), [{"name": "x", "value": "1"}]),
        (([{"name": "x", "value": "1"}], [{"name": "x", "value": "2"}]), [{"name": "x", "value": "2"}]),
    ],
)
def test_overlay_table(overlay: tuple, expected: object) -> None:
    assert metadata.overlay_annotations(*overlay) == expected


def test_token_is_required(pod_a: Running) -> None:
    good = f"/{pod_a.token}/acMetadata/v1/pod/uuid"
    assert pod_a.request("GET", good)[0] == 200
    for path in ("/acMetadata/v1/pod/uuid", f"/{pod_a.token[:-1]}/acMetadata/v1/pod/uuid", f"/{pod_a.token}", "/"):
        status, content_type, _ = pod_a.request("GET", path)
        assert (status, content_type) == (401, TEXT_TYPE), path
    # Without the token, even a wrong method or a missing flavor says 401 and nothing more.
    assert pod_a.request("POST", "/x/acMetadata/v1/pod/hmac/sign", headers={}, body=b"content=a")[0] == 401
    assert len(base64.urlsafe_b64decode(pod_a.token + "=")) * 8 >= 128


def test_flavor_header_is_required(pod_a: Running) -> None:
    path = f"/{pod_a.token}/acMetadata/v1/pod/uuid"
    assert pod_a.request("GET", path, headers={})[0] == 400
    assert pod_a.request("GET", path, headers={"Metadata-Flavor": "Google"})[0] == 400


def test_unknown_paths_and_wrong_methods(pod_a: Running) -> None:
    for path in ("/pod", "/pod/uuid/", "/apps/nope/image/id", "/apps/web", "/pod/hmac"):
        assert pod_a.api("GET", path)[0] == 404, path
    assert pod_a.request("GET", f"/{pod_a.token}/other/pod/uuid")[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", pod_a.port, timeout=5)
    conn.request("DELETE", f"/{pod_a.token}/acMetadata/v1/pod/uuid", headers=FLAVOR)
    response = conn.getresponse()
    assert (response.status, response.getheader("Allow")) == (405, "GET")
    response.read()
    conn.close()
    assert pod_a.api("POST", "/pod/manifest", body=b"content=x")[0] == 405
    assert pod_a.api("GET", "/pod/hmac/sign")[0] == 405


def test_oversized_body_is_refused_unread(pod_a: Running) -> None:
    head = (
        f"POST /{pod_a.token}/acMetadata/v1/pod/hmac/sign HTTP/1.1\r\nHost: x\r\nMetadata-Flavor: AppContainer\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {2 << 20}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", pod_a.port), timeout=5) as conn:
        conn.sendall(head.encode())
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_keep_alive_serves_several_requests_on_one_connection(pod_a: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", pod_a.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", f"/{pod_a.token}/acMetadata/v1/pod/uuid", headers=FLAVOR)
            assert conn.getresponse().read() == POD_A.encode()
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply


def test_pipelined_requests_are_answered_in_order(pod_a: Running) -> None:
    head = f"GET /{pod_a.token}/acMetadata/v1/pod/uuid HTTP/1.1\r\nHost: x\r\nMetadata-Flavor: AppContainer\r\n"
    last = head.replace("pod/uuid", "apps/web/image/id") + "Connection: close\r\n\r\n"
    reply = raw_exchange(pod_a.port, (head + "\r\n" + head + "\r\n" + last).encode())
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert reply.index(POD_A.encode()) < reply.rindex(POD_A.encode()) < reply.index(IMAGE_ID.encode())
    assert b"Connection: close\r\n" in reply


def test_head_gets_the_headers_only(pod_a: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", pod_a.port, timeout=5)
    try:
        conn.request("HEAD", f"/{pod_a.token}/acMetadata/v1/pod/uuid", headers=FLAVOR)
        response = conn.getresponse()
        assert response.status == 405 and response.getheader("Allow") == "GET"
        assert response.read() == b""
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /x HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", b"400"),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"411"),
        (b"GET /x HTTP/1.1\r\nX-Filler: " + b"a" * (20 << 10) + b"\r\n\r\n", b"431"),
        (b"GET /x HTTP/1.1\r\nX-Filler: " + b"a" * (20 << 10), b"431"),  # no end of head in sight
    ],
)
def test_malformed_requests_get_an_error_and_the_connection_closes(pod_a: Running, data: bytes, status: bytes) -> None:
    reply = raw_exchange(pod_a.port, data)
    assert reply.startswith(b"HTTP/1.1 " + status + b" "), reply[:80]
    assert b"Connection: close\r\n" in reply
    assert pod_a.api("GET", "/pod/uuid")[0] == 200  # and the service carries on


def test_an_idle_connection_is_closed_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "REQUEST_TIMEOUT", 0.3)
    running = Running(POD_A)
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as idle:
            idle.sendall(b"GET /half-a-request")
            started = time.monotonic()
            assert idle.recv(1) == b""  # closed without an answer
            assert 0.2 < time.monotonic() - started < 3
        assert running.api("GET", "/pod/uuid")[0] == 200
    finally:
        running.service.shutdown()


def test_a_failing_handler_answers_500_and_the_service_carries_on(
    pod_a: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(route: str, body: bytes) -> metadata.Response:
        raise RuntimeError("bug")

    monkeypatch.setattr(pod_a.service, "answer", broken)
    assert pod_a.api("GET", "/pod/uuid")[0] == 500
    monkeypatch.undo()
    assert pod_a.api("GET", "/pod/uuid")[0] == 200


def test_the_service_starts_no_thread_per_connection(pod_a: Running) -> None:
    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    before = threads()
    conns = [socket.create_connection(("127.0.0.1", pod_a.port), timeout=5) for _ in range(10)]
    try:
        assert pod_a.api("GET", "/pod/uuid")[0] == 200
        assert threads() == before
    finally:
        for conn in conns:
            conn.close()


def test_connections_beyond_the_cap_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_CONNECTIONS", 4)
    running = Running(POD_A)
    idle = [socket.create_connection(("127.0.0.1", running.port), timeout=5) for _ in range(4)]
    try:
        time.sleep(0.1)  # let the server accept them all
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as extra:
            assert extra.recv(1) == b""  # closed unanswered
    finally:
        for conn in idle:
            conn.close()

        def answers() -> bool:
            try:
                return running.api("GET", "/pod/uuid") == (200, TEXT_TYPE, POD_A.encode())
            except OSError:  # closed unanswered: the slots are not free yet
                return False

        deadline = time.monotonic() + 5
        while not answers() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert answers()
        running.service.shutdown()


# --- HMAC --------------------------------------------------------------------------------------------


def test_sign_then_verify(pod_a: Running) -> None:
    content = b"hello \x00\xff world & more=1+2"
    status, content_type, signature = pod_a.api("POST", "/pod/hmac/sign", body=form(content=content))
    assert (status, content_type) == (200, TEXT_TYPE)
    assert len(base64.b64decode(signature, validate=True)) == 64  # SHA-512
    assert signature.decode() == metadata.sign(KEY, POD_A, content)
    ok = form(content=content, uuid=POD_A.encode(), signature=signature)
    assert pod_a.api("POST", "/pod/hmac/verify", body=ok)[0] == 200
    for bad in (
        form(content=content, uuid=POD_B.encode(), signature=signature),
        form(content=content + b"!", uuid=POD_A.encode(), signature=signature),
        form(content=content, uuid=POD_A.encode(), signature=b"AAAA" + signature[4:]),
        form(content=content, uuid=POD_A.encode(), signature=b"not base64!"),
    ):
        assert pod_a.api("POST", "/pod/hmac/verify", body=bad)[0] == 403
    assert pod_a.api("POST", "/pod/hmac/verify", body=form(content=content))[0] == 400
    assert pod_a.request("POST", "/wrong/acMetadata/v1/pod/hmac/verify", body=ok)[0] == 401


def test_encoding_is_unambiguous() -> None:
    # Moving bytes between the UUID and the content must change the MAC.
    assert metadata.sign(KEY, "ab", b"c") != metadata.sign(KEY, "a", b"bc")
    assert metadata.verify(KEY, "ab", b"c", metadata.sign(KEY, "ab", b"c"))


def test_a_pod_verifies_what_another_pod_signed(pod_a: Running, pod_b: Running) -> None:
    _, _, signature = pod_a.api("POST", "/pod/hmac/sign", body=form(content=b"payload"))
    as_a = form(content=b"payload", uuid=POD_A.encode(), signature=signature)
    assert pod_b.api("POST", "/pod/hmac/verify", body=as_a)[0] == 200
    as_b = form(content=b"payload", uuid=POD_B.encode(), signature=signature)
    assert pod_b.api("POST", "/pod/hmac/verify", body=as_b)[0] == 403


def test_hmac_key_is_created_once_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "metadata-hmac.key"
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(metadata.load_hmac_key(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results[0]) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert metadata.load_hmac_key(path) == results[0]
    path.chmod(0o644)
    with pytest.raises(RocketError) as caught:
        metadata.load_hmac_key(path)
    assert caught.value.context["path"] == str(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(RocketError):
        metadata.load_hmac_key(path)


# --- Speed -------------------------------------------------------------------------------------------


def test_p99_latency_of_sequential_gets(pod_a: Running) -> None:
    paths = ["/pod/uuid", "/pod/manifest", "/apps/web/annotations", "/pod/annotations"]
    timings = []
    for index in range(200):
        start = time.perf_counter()
        status, _, _ = pod_a.api("GET", paths[index % len(paths)])
        timings.append(time.perf_counter() - start)
        assert status == 200
    timings.sort()
    p50, p99 = timings[99], timings[197]
    print(f"\nmetadata GET latency, new connection each: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    assert p99 < 0.1


# --- A listening socket inside a network namespace ---------------------------------------------------

CREATOR = r"""
import array, ctypes, socket, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
subprocess.run([sys.argv[2], "link", "set", "lo", "up"], check=True)
channel = socket.socket(fileno=int(sys.argv[1]))
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 2375))
listener.listen(16)
channel.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener.fileno()]))])
listener.close()
channel.recv(1)  # keep the namespace's process alive until the test is done with it
"""

VISITOR = r"""
import ctypes, http.client, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(f"/proc/{sys.argv[1]}/ns/net", os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:
    raise OSError(ctypes.get_errno(), "setns")
conn = http.client.HTTPConnection("127.0.0.1", 2375, timeout=5)
conn.request("GET", sys.argv[2], headers={"Metadata-Flavor": "AppContainer"})
response = conn.getresponse()
print(response.status, response.read().decode())
"""


def receive_fd(channel: socket.socket) -> int:
    size = array.array("i").itemsize
    _, ancillary, _, _ = channel.recvmsg(1, socket.CMSG_LEN(size))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            return array.array("i", data[:size])[0]
    raise AssertionError("no descriptor received")


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_socket_made_in_a_netns_is_reachable_only_from_it() -> None:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if not os.path.exists(ip):
        pytest.skip("iproute2 is missing")
    ours, theirs = socket.socketpair()
    creator = subprocess.Popen([sys.executable, "-c", CREATOR, str(theirs.fileno()), ip], pass_fds=(theirs.fileno(),))
    theirs.close()
    service: Optional[MetadataService] = None
    try:
        listener = socket.socket(fileno=receive_fd(ours))
        assert listener.getsockname() == ("127.0.0.1", 2375)
        token = metadata.new_token()
        service = MetadataService(POD_A, token, POD_MANIFEST, APPS, KEY)
        service.serve(listener)
        path = f"/{token}/acMetadata/v1/pod/uuid"
        inside = subprocess.run(
            [sys.executable, "-c", VISITOR, str(creator.pid), path], capture_output=True, text=True, timeout=30
        )
        assert inside.returncode == 0, inside.stderr
        assert inside.stdout.strip() == f"200 {POD_A}"
        # The host's 127.0.0.1:2375 is another socket (if any): it never answers for this pod.
        try:
            reply = request(2375, "GET", path, headers=FLAVOR)
        except OSError:
            reply = None
        assert reply is None or reply[2] != POD_A.encode()
    finally:
        if service is not None:
            service.shutdown()
        ours.close()  # the creator's recv returns: it exits, and the namespace goes with its last socket
        creator.wait(timeout=30)
    assert creator.returncode == 0
