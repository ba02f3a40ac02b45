"""A throw-away CA and a threaded HTTPS (or plain HTTP) server on 127.0.0.1, for transport and fetch tests.

    with Server({"/a.aci": Route(body=data, etag='"v1"')}, ca_dir=tmp_path / "certs.d") as server:
        server.url("/a.aci")        # https://127.0.0.1:PORT/a.aci
        server.ca_file              # the CA certificate (PEM), written into ca_dir
        server.requests             # every request: method, path (with query), lower-cased headers
    with Server(routes, tls=False) as plain: ...     # the plain-HTTP variant, on its own port

A route has a status, headers and a body, and may answer If-None-Match with 304 (`etag`), Range with
206, send Cache-Control, redirect (`redirect()`), drop the connection after N body bytes (the first
`drop_times` requests only, to test resuming), wait before answering or between chunks (timeouts), and
send more bytes than it announces or without announcing a length (size caps). Paths without a route
are served from `root` if given, else answered 404. The server only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE_NAME = "rocket-test-ca.pem"


@dataclass(frozen=True)
class Certs:
    """PEM texts of a test CA and of a server certificate for 127.0.0.1 and localhost that it signed."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@functools.cache
def _ca() -> Tuple[Any, x509.Certificate, x509.SubjectKeyIdentifier]:
    """The test CA, made once per test process (EC P-256: fast to make)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("rocket test CA"))
        .issuer_name(_name("rocket test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca, ca_ski


@functools.cache
def make_certs(host: str = "127.0.0.1") -> Certs:
    """The CA and a server certificate for localhost, 127.0.0.1 and `host` (another loopback address)."""
    ca_key, ca, ca_ski = _ca()
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    addresses = sorted({"127.0.0.1", host})
    names = [x509.DNSName("localhost")] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Certs(ca.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.PEM), key_pem)


def write_ca(folder: Path) -> Path:
    """Write the test CA certificate (PEM) into `folder` (made if missing) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CA_FILE_NAME
    path.write_bytes(make_certs().ca_pem)
    return path


def _server_context(host: str) -> ssl.SSLContext:
    certs = make_certs(host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    folder = Path(tempfile.mkdtemp(prefix="rocket-test-cert."))
    try:
        (folder / "cert.pem").write_bytes(certs.cert_pem)
        (folder / "key.pem").write_bytes(certs.key_pem)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    finally:
        shutil.rmtree(folder)
    return context


@dataclass
class Route:
    """How the server answers one path (see the module docstring)."""

    body: bytes = b""
    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)
    etag: Optional[str] = None
    cache_control: Optional[str] = None
    ranges: bool = True
    drop_after: Optional[int] = None
    drop_times: int = 1
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_size: int = 16 * 1024
    fill: int = 0
    send_length: bool = True


def redirect(location: str, status: int = 302) -> Route:
    """A route that redirects to `location`."""
    return Route(status=status, headers={"Location": location})


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: Dict[str, str]

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()  # here, in the request's thread, not in accept()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        headers: Dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        owner.requests.append(Request(self.command, self.path, headers))
        route = owner.find(self.path)
        self.close_connection = True
        if route is None:
            self._send(404, {}, b"not found\n", length=True)
            return
        count = owner.count(self.path)
        if route.delay and owner.stopping.wait(route.delay):
            return
        extra = dict(route.headers)
        if route.etag:
            extra["ETag"] = route.etag
        if route.cache_control:
            extra["Cache-Control"] = route.cache_control
        if route.etag and headers.get("if-none-match") in (route.etag, "*"):
            self._send(304, extra, b"", length=False)
            return
        status, body = route.status, route.body
        wanted = headers.get("range", "")
        if_range = headers.get("if-range")
        if status == 200 and route.ranges and wanted.startswith("bytes=") and if_range in (None, route.etag):
            first = int(wanted[len("bytes=") :].split("-")[0])
            if first >= len(body):
                extra["Content-Range"] = f"bytes */{len(body)}"
                self._send(416, extra, b"", length=True)
                return
            extra["Content-Range"] = f"bytes {first}-{len(body) - 1}/{len(body)}"
            status, body = 206, body[first:]
        drop = route.drop_after if route.drop_after is not None and count <= route.drop_times else None
        self._send(status, extra, body, length=route.send_length, route=route, drop=drop)

    def _send(
        self,
        status: int,
        headers: Dict[str, str],
        body: bytes,
        *,
        length: bool,
        route: Optional[Route] = None,
        drop: Optional[int] = None,
    ) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        payload = body + (b"x" * route.fill if route is not None else b"")
        if drop is not None:
            payload = payload[:drop]
        size = route.chunk_size if route is not None else len(payload) or 1
        try:
            for start in range(0, len(payload), size):
                if (
                    start
                    and route is not None
                    and route.chunk_delay
                    and self.server.owner.stopping.wait(route.chunk_delay)
                ):
                    return
                self.wfile.write(payload[start : start + size])
                self.wfile.flush()
        except OSError:
            return  # the client stopped reading: what a size cap does
        if drop is not None:
            # An abrupt end: no TLS close_notify, no more bytes, as when a network link breaks.
            self.request.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: Server

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # failed handshakes (the tests that distrust the CA) and clients that hang up


class Server:
    """A threaded HTTPS (default) or plain HTTP server on 127.0.0.1 and a free port; a context manager."""

    def __init__(
        self,
        routes: Optional[Dict[str, Route]] = None,
        *,
        root: Optional[Path] = None,
        ca_dir: Optional[Path] = None,
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test servers listen on loopback addresses only, not {host}")
        self.routes: Dict[str, Route] = dict(routes or {})
        self.root = root
        self.tls = tls
        self.ca_file: Optional[Path] = write_ca(ca_dir) if ca_dir is not None and tls else None
        self.requests: List[Request] = []
        self.stopping = threading.Event()
        self._counts: Dict[str, int] = {}
        self._lock = threading.Lock()
        self.host = host
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.owner = self
        if tls:
            self._httpd.socket = _server_context(host).wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/", host: str = "") -> str:
        """The URL of `path` on this server (`host` may be localhost: the certificate covers it too)."""
        default = 443 if self.tls else 80
        where = host or self.host
        return f"{self.scheme}://{where}{'' if self.port == default else f':{self.port}'}{path}"

    def connect_to(self) -> Dict[str, str]:
        """An HttpClient `connect_to` map: the default port and `localhost` of both names lead here."""
        default = 443 if self.tls else 80
        here = f"127.0.0.1:{self.port}"
        return {f"{host}:{port}": here for host in ("127.0.0.1", "localhost") for port in (default, self.port)}

    def route(self, path: str, route: Route) -> None:
        """Add or replace the route of `path`."""
        self.routes[path] = route

    def find(self, path: str) -> Optional[Route]:
        """The route for a request path: exact (with query) first, then without the query, then `root`."""
        route = self.routes.get(path) or self.routes.get(path.split("?", 1)[0])
        if route is not None or self.root is None:
            return route
        target = (self.root / path.split("?", 1)[0].lstrip("/")).resolve()
        if target.is_file() and target.is_relative_to(self.root.resolve()):
            return Route(body=target.read_bytes())
        return None

    def count(self, path: str) -> int:
        """Count one more request for `path` and return how many there were so far."""
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            return self._counts[path]

    def requests_for(self, path: str) -> List[Request]:
        """The requests whose path (without the query) is `path`."""
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
