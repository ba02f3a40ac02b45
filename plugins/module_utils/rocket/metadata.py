"""The appc metadata service of one pod (spec/ace.md "App Container Metadata Service").

The supervisor creates a listening socket on 127.0.0.1 inside the pod's network namespace, so only the
pod can reach it, and serves it from a thread with `MetadataService.serve`. Every request carries the
pod's token as the first path segment (else 401) and `Metadata-Flavor: AppContainer` (else 400):

    GET  /<token>/acMetadata/v1/pod/annotations           JSON: the pod manifest's list, or null
    GET  /<token>/acMetadata/v1/pod/manifest              the pod manifest, byte for byte
    GET  /<token>/acMetadata/v1/pod/uuid                  text
    GET  /<token>/acMetadata/v1/apps/NAME/annotations     JSON: image annotations overlaid by the pod's
    GET  /<token>/acMetadata/v1/apps/NAME/image/manifest  the image manifest, byte for byte
    GET  /<token>/acMetadata/v1/apps/NAME/image/id        text
    POST /<token>/acMetadata/v1/pod/hmac/sign             form content=  -> base64 HMAC-SHA512
    POST /<token>/acMetadata/v1/pod/hmac/verify           form content, uuid, signature -> 200 or 403

Signatures use one host-level key shared by all pods (`load_hmac_key`), so a pod can verify what another
pod signed. The MAC covers the signing pod's UUID and the content, each prefixed with its length, so no
(uuid, content) pair can be re-split into another. Answers are computed up front: well under the 100 ms
a client may wait.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
import struct
from pathlib import Path
from urllib.parse import unquote_to_bytes

from .errors import RocketError
from .fileio import atomic_write
from .locks import FileLock
from .metadata_http import HttpServer, Request, Response
from .metadata_token import metadata_url as metadata_url  # pylint: disable=unused-import,useless-import-alias
from .metadata_token import new_token as new_token  # pylint: disable=unused-import,useless-import-alias
from .names import is_ac_name
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing in the supervisor
if TYPE_CHECKING:
    import socket
    import threading
    from typing import Any, Dict, Optional, Tuple

FLAVOR_HEADER = "Metadata-Flavor"
FLAVOR = "AppContainer"
API_PREFIX = "/acMetadata/v1"
HMAC_KEY_BYTES = 64
TOKEN_BYTES = 32  # 256 bits; the spec asks for at least 128
MAX_BODY = 1 << 20
REQUEST_TIMEOUT = 10.0  # seconds a connection may stay idle (or trickle a request in)
MAX_CONNECTIONS = 64  # more at once are closed unanswered: a pod cannot exhaust its supervisor's descriptors

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=us-ascii"
_MAC_DOMAIN = b"rocket acMetadata v1 hmac\x00"


class AppMetadata(Record):
    """What the service tells about one app: its image's manifest (raw JSON) and image ID."""

    FIELDS = ("image_manifest", "image_id")
    HASHABLE = True

    def __init__(self, image_manifest: bytes, image_id: str) -> None:
        self.image_manifest = image_manifest
        self.image_id = image_id


# --- Token, URL and the host key ---------------------------------------------------------------------


def _read_key(path: Path) -> Optional[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        key = stream.read(HMAC_KEY_BYTES + 1)
    if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.geteuid():
        raise RocketError(
            f"metadata HMAC key {path} is readable by others or not owned by rocket",
            hint=f"remove {path} (pods will get a new key) or chmod 600 it",
            path=str(path),
        )
    if len(key) != HMAC_KEY_BYTES:
        raise RocketError(
            f"metadata HMAC key {path} holds {len(key)} bytes, not {HMAC_KEY_BYTES}",
            hint=f"remove {path}; rocket creates a new one (signatures made with the old key stop verifying)",
            path=str(path),
        )
    return key


def load_hmac_key(path: Path) -> bytes:
    """The host's metadata HMAC key: read it, or create it once (0600, under an flock); never rewritten."""
    key = _read_key(path)
    if key is not None:
        return key
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):
        key = _read_key(path)  # another process may have created it while we waited
        if key is None:
            key = os.urandom(HMAC_KEY_BYTES)  # what secrets.token_bytes does
            atomic_write(path, key, mode=0o600)
    return key


def _mac(key: bytes, pod_uuid: str, content: bytes) -> bytes:
    import hashlib  # with hmac, loads libcrypto: only once a pod signs or verifies
    import hmac

    uuid_bytes = pod_uuid.encode()
    message = b"".join(
        (_MAC_DOMAIN, struct.pack(">Q", len(uuid_bytes)), uuid_bytes, struct.pack(">Q", len(content)), content)
    )
    return hmac.new(key, message, hashlib.sha512).digest()


def sign(key: bytes, pod_uuid: str, content: bytes) -> str:
    """Base64 HMAC-SHA512 of (pod UUID, content), as /pod/hmac/sign returns it."""
    return base64.b64encode(_mac(key, pod_uuid, content)).decode("ascii")


def verify(key: bytes, pod_uuid: str, content: bytes, signature: str) -> bool:
    """Whether `signature` is what `sign` gives for this pod UUID and content (constant time)."""
    from hmac import compare_digest

    try:
        given = base64.b64decode(signature.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return False
    return compare_digest(given, _mac(key, pod_uuid, content))


# --- Answers -----------------------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _text(status: int, message: str, *headers: Tuple[str, str]) -> Response:
    return Response(status, TEXT_TYPE, message.encode("ascii", "replace") + b"\n", headers)


def _parse_json(raw: bytes, what: str) -> Dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise RocketError(f"{what} is not valid JSON: {exc}", hint="pass the manifest the pod runs") from exc
    if not isinstance(value, dict):
        raise RocketError(f"{what} is not a JSON object", hint="pass the manifest the pod runs")
    return value


def overlay_annotations(image: Optional[list], pod: Optional[list]) -> Optional[list]:
    """Image annotations with the pod's app annotations overlaid by name; None when both are absent."""
    if image is None and pod is None:
        return None
    merged: Dict[str, Any] = {}
    for entry in (image or []) + (pod or []):
        merged[entry["name"]] = entry["value"]
    return [{"name": name, "value": value} for name, value in merged.items()]


def _parse_form(body: bytes) -> Optional[Dict[str, bytes]]:
    """Fields of an application/x-www-form-urlencoded body, byte-exact; None if malformed or repeated."""
    fields: Dict[str, bytes] = {}
    for pair in body.split(b"&") if body else []:
        name, _equals, value = pair.partition(b"=")
        try:
            key = unquote_to_bytes(name.replace(b"+", b" ")).decode("ascii")
        except UnicodeDecodeError:
            return None
        if key in fields:
            return None
        fields[key] = unquote_to_bytes(value.replace(b"+", b" "))
    return fields


class MetadataService:
    """The metadata service of one pod: answers computed up front, served on a given listening socket."""

    def __init__(
        self, pod_uuid: str, token: str, pod_manifest: bytes, apps: Dict[str, AppMetadata], hmac_key: bytes
    ) -> None:
        if len(token) < 22 or len(hmac_key) < 32:  # 22 URL-safe characters hold 128 bits
            raise AssertionError("bug: metadata token or HMAC key too short")
        self.pod_uuid = pod_uuid
        self._prefix = f"/{token}{API_PREFIX}"
        self._token_bytes = f"/{token}/".encode()
        self._key = hmac_key
        manifest = _parse_json(pod_manifest, "pod manifest")
        pod_apps = {app.get("name"): app for app in manifest.get("apps") or [] if isinstance(app, dict)}
        self._get: Dict[str, Tuple[str, bytes]] = {
            "/pod/annotations": (JSON_TYPE, _json(manifest.get("annotations"))),
            "/pod/manifest": (JSON_TYPE, pod_manifest),
            "/pod/uuid": (TEXT_TYPE, pod_uuid.encode("ascii")),
        }
        for name, app in apps.items():
            if not is_ac_name(name):
                raise AssertionError(f"bug: app name {name!r} is not an AC Name")
            image = _parse_json(app.image_manifest, f"image manifest of app {name}")
            annotations = overlay_annotations(image.get("annotations"), pod_apps.get(name, {}).get("annotations"))
            self._get[f"/apps/{name}/annotations"] = (JSON_TYPE, _json(annotations))
            self._get[f"/apps/{name}/image/manifest"] = (JSON_TYPE, app.image_manifest)
            self._get[f"/apps/{name}/image/id"] = (TEXT_TYPE, app.image_id.encode("ascii"))
        self._server: Optional[HttpServer] = None

    def check(self, method: str, target: str, flavor: Optional[str]) -> Tuple[Optional[Response], str]:
        """Authenticate and route a request line: (an error answer or None, the path under the API)."""
        from hmac import compare_digest

        path = target.split("?", 1)[0]
        # compare_digest on the token segment: a timing side channel must not reveal it byte by byte.
        segment = path.encode("utf-8", "replace")[: len(self._token_bytes)]
        if not compare_digest(segment.ljust(len(self._token_bytes), b"\0"), self._token_bytes):
            return _text(401, "missing or wrong metadata token"), ""
        if flavor != FLAVOR:
            return _text(400, f"header {FLAVOR_HEADER}: {FLAVOR} is required"), ""
        if not path.startswith(self._prefix + "/"):
            return _text(404, "not found"), ""
        route = path[len(self._prefix) :]
        allowed = "GET" if route in self._get else "POST" if route in ("/pod/hmac/sign", "/pod/hmac/verify") else ""
        if not allowed:
            return _text(404, "not found"), ""
        if method != allowed:
            return _text(405, f"use {allowed}", ("Allow", allowed)), ""
        return None, route

    def answer(self, route: str, body: bytes) -> Response:
        """The answer to an authenticated request for `route` (from `check`) with its body."""
        if route in self._get:
            content_type, data = self._get[route]
            return Response(200, content_type, data)
        form = _parse_form(body)
        if form is None or "content" not in form:
            return _text(400, "the body must be a form with one content= field")
        if route == "/pod/hmac/sign":
            return Response(200, TEXT_TYPE, sign(self._key, self.pod_uuid, form["content"]).encode("ascii"))
        try:
            pod_uuid, signature = form["uuid"].decode("ascii"), form["signature"].decode("ascii")
        except (KeyError, UnicodeDecodeError):
            return _text(400, "verify needs the form fields content, uuid and signature")
        if verify(self._key, pod_uuid, form["content"], signature):
            return _text(200, "valid")
        return _text(403, "signature does not match this content and pod UUID")

    def handle(self, request: Request) -> Response:
        """The answer to one HTTP request (the server in metadata_http.py has parsed it)."""
        error, route = self.check(request.method, request.target, request.headers.get(FLAVOR_HEADER.lower()))
        if error is not None:
            return error
        if request.method == "POST":
            kind = request.headers.get("content-type", "application/x-www-form-urlencoded").split(";")[0].strip()
            if kind != "application/x-www-form-urlencoded":
                return _text(415, "send application/x-www-form-urlencoded")
        return self.answer(route, request.body)

    def serve(self, sock: socket.socket) -> threading.Thread:
        """Serve on a bound socket (listening from now on) in a daemon thread; the service owns the socket."""
        if self._server is not None:
            raise AssertionError("bug: metadata service served twice")
        self._server = HttpServer(
            sock, self.handle, max_connections=MAX_CONNECTIONS, timeout=REQUEST_TIMEOUT, max_body=MAX_BODY
        )
        return self._server.start()

    def shutdown(self) -> None:
        """Stop serving: close the listening socket and the open connections; idempotent."""
        if self._server is not None:
            self._server.shutdown()
