"""The one HTTP(S) client of the engine: discovery pages, images, signatures and keys.

Built on http.client so that every rule is visible here rather than inside urllib's handlers:

- HTTPS only; `http://` (first URL or any redirect) needs `allow_http` (`--insecure-options=http`).
- Certificates are always verified against the system trust store plus `ca_files`, unless
  `insecure_tls` (`--insecure-options=tls`).
- Redirects are followed here, at most `max_redirects`; a redirect never leads to `file://`.
- Every response is read against a size cap, and every socket operation has a timeout; `get` also
  bounds the whole exchange by `timeout`, `download` bounds each read (a large image may take long).
- Credentials from auth.d go only to the https host they are configured for, per hop: the first
  host's `Authorization` never follows a redirect to another host.
- `file://` URLs (the mirror map of an air-gapped site) are read from the local file system.

Failures raise FetchError with context `url` and `reason`: http-status, too-large, timeout, tls,
insecure-http, redirects, connection, and for file:// URLs not-found and io (io also for local writes).
"""

from __future__ import annotations

import http.client
import io
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from . import __version__
from .auth import AuthConfig, load_auth, trusted_ca_files
from .errors import FetchError, UsageError
from .fileio import atomic_write, fsync_dir

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_SIZE = 64 * 1024
DEFAULT_USER_AGENT = f"rocket/{__version__}"
# Headers that identify the caller to one server and must not follow a redirect to another host.
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-\d+/(?:\d+|\*)$")

Progress = Callable[[int, Optional[int]], None]

# What to do next, by FetchError reason.
HINTS = {
    "http-status": "the server refused the request",
    "too-large": "check the URL; if the file really is this large, raise the size limit",
    "timeout": "check the network and the server, or try again later",
    "tls": "for a private site put its CA certificate (PEM) into certs.d/ of the local config; "
    "--insecure-options=tls skips the check",
    "insecure-http": "use an https URL, or pass --insecure-options=http if this network is trusted",
    "redirects": "the server redirects in a loop, too deep or to a URL rocket does not follow; tell its operator",
    "connection": "check the host name, the network and that the server is up; a download resumes where it stopped",
    "not-found": "check the mirror map's template and the folder it points to",
    "io": "check the path, its permissions and free space",
}


def fetch_error(reason: str, url: str, message: str, *, hint: str = "", **context: object) -> FetchError:
    """A FetchError with `reason` and `url` in its context and the reason's standard hint."""
    return FetchError(f"{url}: {message}", hint=hint or HINTS[reason], url=url, reason=reason, **context)


def parse_max_age(cache_control: Optional[str]) -> Optional[int]:
    """Seconds a response may be reused per `Cache-Control` (no-cache/no-store: 0), None if unsaid."""
    if not cache_control:
        return None
    max_age: Optional[int] = None
    for directive in cache_control.lower().split(","):
        key, _equals, value = directive.strip().partition("=")
        if key in ("no-cache", "no-store"):
            return 0
        if key == "max-age" and value.strip().strip('"').isdigit():
            max_age = int(value.strip().strip('"'))
    return max_age


@dataclass
class Response:
    """A complete response: status, final URL after redirects, lower-cased headers, body."""

    status: int
    url: str
    headers: Dict[str, str]
    body: bytes

    @property
    def etag(self) -> Optional[str]:
        """The `ETag` header, if any."""
        return self.headers.get("etag")

    @property
    def max_age(self) -> Optional[int]:
        """Seconds the response may be reused (from `Cache-Control`), if said."""
        return parse_max_age(self.headers.get("cache-control"))


@dataclass
class Download:
    """What `HttpClient.download` did: status is 'downloaded', 'not-modified' or 'resumed'."""

    status: str
    etag: Optional[str]
    max_age: Optional[int]
    final_url: str
    size: int


class _HTTPConnection(http.client.HTTPConnection):
    """Dials `address`, which may differ from the URL's host and port (curl's --connect-to)."""

    def __init__(self, host: str, port: int, *, address: Tuple[str, int], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address, self.timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    """Dials `address` like _HTTPConnection; the certificate is still checked against the URL's host."""

    def __init__(self, host: str, port: int, *, address: Tuple[str, int], timeout: float, tls: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self.address = address
        self.tls = tls

    def connect(self) -> None:
        sock = socket.create_connection(self.address, self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


@dataclass
class _Reply:
    """An open response whose body is still to be read, over HTTP or from a local file."""

    url: str
    status: int
    headers: Dict[str, str]
    stream: Union[io.BufferedReader, http.client.HTTPResponse]
    connection: Optional[http.client.HTTPConnection] = None
    # Kept apart: http.client drops connection.sock when a response will close the connection.
    sock: Optional[socket.socket] = None

    @property
    def length(self) -> Optional[int]:
        """The announced body length (`Content-Length`), if any."""
        length = self.headers.get("content-length", "")
        return int(length) if length.isdigit() else None

    def read(self, size: int, deadline: Optional[float], timeout: float) -> bytes:
        """Up to `size` bytes of the body (b"" at its end), within the deadline if there is one."""
        if self.sock is not None:
            self.sock.settimeout(_budget(deadline, timeout))
        # read1: one read of the socket per call, so that the deadline is checked between reads.
        return self.stream.read1(size)

    def close(self) -> None:
        self.stream.close()
        if self.connection is not None:
            self.connection.close()


def _budget(deadline: Optional[float], timeout: float) -> float:
    """Seconds the next socket operation may take; raises socket.timeout once the deadline passed."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("deadline passed")
    return min(left, timeout)


def _origin(parts: SplitResult) -> Tuple[str, str, int]:
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or ""), (parts.port or default)


def _address(text: str) -> Tuple[str, int]:
    host, _colon, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"connect-to address {text!r} is not HOST:PORT", hint="write e.g. 127.0.0.1:8443")
    return host.strip("[]").lower(), int(port)


class HttpClient:
    """A GET-only HTTP(S) client that enforces rocket's transport rules (see the module docstring)."""

    def __init__(
        self,
        *,
        ca_files: Sequence[Path] = (),
        insecure_tls: bool = False,
        allow_http: bool = False,
        auth: Optional[AuthConfig] = None,
        timeout: float = 30.0,
        max_redirects: int = 10,
        user_agent: str = DEFAULT_USER_AGENT,
        connect_to: Optional[Mapping[str, str]] = None,
    ) -> None:
        """`connect_to` maps `host:port` of a URL to the `host:port` actually dialled (tests, split DNS)."""
        self.insecure_tls = insecure_tls
        self.allow_http = allow_http
        self.auth = auth if auth is not None else AuthConfig()
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self.connect_to: Dict[Tuple[str, int], Tuple[str, int]] = {
            _address(source): _address(target) for source, target in (connect_to or {}).items()
        }
        self.tls = ssl.create_default_context()
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        for ca_file in ca_files:
            try:
                self.tls.load_verify_locations(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                hint = "the file must hold PEM certificates (-----BEGIN CERTIFICATE-----)"
                raise UsageError(f"cannot load CA certificate {ca_file}: {exc}", hint=hint, file=str(ca_file)) from exc
        if insecure_tls:
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE

    # --- public API -----------------------------------------------------------------------------

    def get(self, url: str, *, max_size: int, headers: Optional[Dict[str, str]] = None) -> Response:
        """Fetch `url` whole (at most `max_size` bytes, within `timeout`); 2xx, or 304 if asked conditionally."""
        deadline = time.monotonic() + self.timeout
        reply = self._open(url, headers or {}, deadline=deadline)
        try:
            conditional = any(k.lower() in ("if-none-match", "if-modified-since") for k in headers or {})
            if not (200 <= reply.status < 300 or (reply.status == 304 and conditional)):
                raise _status_error(reply)
            body = self._read_all(reply, max_size, deadline)
        finally:
            reply.close()
        return Response(reply.status, reply.url, reply.headers, body)

    def download(
        self,
        url: str,
        destination: Path,
        *,
        max_size: int,
        etag: Optional[str] = None,
        progress: Optional[Progress] = None,
        durable: bool = True,
    ) -> Download:
        """Fetch `url` into `destination` through `<destination>.part`, resuming a broken earlier attempt.

        The caller holds a lock for `destination`: two downloads into one `.part` would interleave.
        durable=False skips the final fsyncs, for a caller that consumes the file at once (fetch imports
        and deletes it: 0.5 s per GiB here).
        """
        part = destination.with_suffix(destination.suffix + ".part")
        for _attempt in range(2):
            have = part.stat().st_size if part.is_file() else 0
            validator = _read_validator(part) if have else None
            resume = have > 0 and validator is not None and have <= max_size
            if have and not resume:
                _discard(part)
            headers: Dict[str, str] = {}
            if etag:
                headers["If-None-Match"] = etag
            if resume and validator is not None:
                headers["Range"] = f"bytes={have}-"
                headers["If-Range"] = validator
            reply = self._open(url, headers, deadline=None)
            try:
                if reply.status == 304 and etag:
                    size = destination.stat().st_size if destination.is_file() else 0
                    max_age = parse_max_age(reply.headers.get("cache-control"))
                    return Download("not-modified", reply.headers.get("etag", etag), max_age, reply.url, size)
                offset = 0
                if resume and reply.status in (206, 416):
                    # 416: the part is as long as the file or longer (changed without a new validator).
                    if reply.status == 416 or _range_start(reply.headers.get("content-range", "")) != have:
                        _discard(part)
                        continue
                    offset = have
                elif reply.status != 200:
                    raise _status_error(reply)
                return self._receive(
                    reply, part, destination, offset=offset, max_size=max_size, progress=progress, durable=durable
                )
            finally:
                reply.close()
        raise AssertionError("bug: a download restarted from zero asked for a range again")

    # --- requests and redirects -----------------------------------------------------------------

    def _check_url(self, url: str, previous: Optional[str]) -> SplitResult:
        """Refuse what may not be fetched: bad URLs, plain http unless allowed, redirects to file://."""
        problem = ""
        try:
            parts = urlsplit(url)
            _port = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as exc:
            parts, problem = urlsplit(""), str(exc)
        if not problem:
            if parts.scheme == "file" and previous is None and parts.netloc in ("", "localhost"):
                return parts
            if parts.scheme not in ("https", "http") or not parts.hostname:
                problem = "rocket fetches https (or, if allowed, http) URLs only"
        if problem and previous is None:
            raise UsageError(f"cannot fetch {url!r}: {problem}", hint="give an https:// URL", url=url)
        if problem:
            raise fetch_error(
                "redirects", previous or url, f"redirected to {url!r}, not followed: {problem}", location=url
            )
        if parts.scheme == "http" and not self.allow_http:
            where = f"redirected from {previous} to plain http" if previous else "plain http"
            raise fetch_error("insecure-http", url, f"{where} refused: it can be read and changed on the way")
        return parts

    def _open(self, url: str, headers: Mapping[str, str], *, deadline: Optional[float]) -> _Reply:
        """Send GET to `url`, following redirects, and return the first non-redirect response."""
        extra = dict(headers)
        current, previous = url, None
        first_host: Optional[Tuple[str, int]] = None
        for _hop in range(self.max_redirects + 1):
            parts = self._check_url(current, previous)
            if parts.scheme == "file":
                return _open_file(current, parts)
            _scheme, host, port = _origin(parts)
            if first_host is None:
                first_host = (host, port)
            elif (host, port) != first_host:
                # Another host: whatever identified us to the first one stays behind.
                extra = {k: v for k, v in extra.items() if k.lower() not in _PRIVATE_HEADERS}
            # Credentials from auth.d are looked up per hop: each host gets its own, https only.
            reply = self._request(current, parts, {**extra, **self.auth.headers_for(current)}, deadline)
            if reply.status not in REDIRECT_STATUSES:
                return reply
            location = reply.headers.get("location", "").strip()
            reply.close()
            if not location:
                raise fetch_error("http-status", current, f"{reply.status} without a Location", status=reply.status)
            previous, current = current, urljoin(current, location)
        raise fetch_error("redirects", url, f"more than {self.max_redirects} redirects (the last to {current})")

    def _request(self, url: str, parts: SplitResult, headers: Dict[str, str], deadline: Optional[float]) -> _Reply:
        """One GET over a new connection; network failures become FetchError."""
        _scheme, host, port = _origin(parts)
        address = self.connect_to.get((host, port), (host, port))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection: http.client.HTTPConnection
        try:
            budget = _budget(deadline, self.timeout)
            if parts.scheme == "https":
                connection = _HTTPSConnection(host, port, address=address, timeout=budget, tls=self.tls)
            else:
                connection = _HTTPConnection(host, port, address=address, timeout=budget)
        except socket.timeout as exc:
            raise self._network_error(exc, url) from exc
        try:
            connection.request(
                "GET", target, headers={"User-Agent": self.user_agent, "Accept-Encoding": "identity", **headers}
            )
            sock = connection.sock
            if sock is not None:
                sock.settimeout(_budget(deadline, self.timeout))
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self._network_error(exc, url) from exc
        merged: Dict[str, str] = {}
        for key, value in response.getheaders():
            key = key.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return _Reply(url, response.status, merged, response, connection, sock)

    # --- reading --------------------------------------------------------------------------------

    def _read_all(self, reply: _Reply, max_size: int, deadline: Optional[float]) -> bytes:
        """The whole body, refused once it passes `max_size`."""
        if reply.length is not None and reply.length > max_size:
            raise _too_large(reply.url, max_size, reply.length)
        chunks = []
        size = 0
        while True:
            chunk = self._read_chunk(reply, deadline)
            if not chunk:
                break
            size += len(chunk)
            if size > max_size:
                raise _too_large(reply.url, max_size, None)
            chunks.append(chunk)
        _check_complete(reply, size)
        return b"".join(chunks)

    def _read_chunk(self, reply: _Reply, deadline: Optional[float]) -> bytes:
        try:
            return reply.read(CHUNK_SIZE, deadline, self.timeout)
        except (OSError, http.client.HTTPException) as exc:
            if reply.connection is None:  # a local file
                raise _io_error(reply.url, exc) from exc
            raise self._network_error(exc, reply.url) from exc

    def _receive(
        self,
        reply: _Reply,
        part: Path,
        destination: Path,
        *,
        offset: int,
        max_size: int,
        progress: Optional[Progress],
        durable: bool,
    ) -> Download:
        """Append the body to `part` from `offset`, then move it into place."""
        total = None if reply.length is None else offset + reply.length
        if total is not None and total > max_size:
            _discard(part)
            raise _too_large(reply.url, max_size, total)
        # Not atomic_output: a partial download has to outlive a failed attempt so that the next one can
        # resume it, and atomic_output deletes its file on error by design. _finish() gives the finished
        # file the same guarantee (fsync, rename, fsync of the folder).
        try:  # OSError here is local; network failures arrive as FetchError from _read_chunk
            with open(part, "ab" if offset else "wb") as out:
                if not offset:
                    _write_validator(part, reply.headers)
                done = offset
                while True:
                    if progress is not None:
                        progress(done, total)
                    chunk = self._read_chunk(reply, None)
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > max_size:
                        _discard(part)
                        raise _too_large(reply.url, max_size, None)
                    out.write(chunk)
                _check_complete(reply, done - offset)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
        except OSError as exc:
            raise _io_error(str(part), exc) from exc
        return self._finish(part, destination, reply, resumed=offset > 0, durable=durable)

    def _finish(self, part: Path, destination: Path, reply: _Reply, *, resumed: bool, durable: bool) -> Download:
        """Rename the complete `.part` into place durably and describe the result."""
        try:
            os.replace(part, destination)
            if durable:
                fsync_dir(destination.parent)
            _validator_path(part).unlink(missing_ok=True)
            size = destination.stat().st_size
        except OSError as exc:
            raise _io_error(str(destination), exc) from exc
        max_age = parse_max_age(reply.headers.get("cache-control"))
        return Download("resumed" if resumed else "downloaded", reply.headers.get("etag"), max_age, reply.url, size)

    # --- errors ---------------------------------------------------------------------------------

    def _network_error(self, exc: BaseException, url: str) -> FetchError:
        if isinstance(exc, socket.timeout):
            return fetch_error("timeout", url, f"no answer within {self.timeout:g} s")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return fetch_error("tls", url, f"certificate not trusted ({exc.verify_message or exc.reason})")
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return fetch_error("tls", url, f"TLS failed ({exc.reason or exc})")
        return fetch_error("connection", url, f"connection failed ({exc})")


# --- helpers without client state ---------------------------------------------------------------


def client_from_config(
    local_config: Path,
    system_config: Path,
    *,
    insecure: AbstractSet[str] = frozenset(),
    timeout: float = 30.0,
) -> HttpClient:
    """A client with the config's credentials and CA certificates and the chosen `--insecure-options`."""
    return HttpClient(
        ca_files=trusted_ca_files(local_config),
        insecure_tls="tls" in insecure,
        allow_http="http" in insecure,
        auth=load_auth(local_config, system_config),
        timeout=timeout,
    )


def _open_file(url: str, parts: SplitResult) -> _Reply:
    """A `file://` URL as a response: 200 with the file's size as its length."""
    path = unquote(parts.path)
    try:
        stream = open(path, "rb")
    except FileNotFoundError as exc:
        raise fetch_error("not-found", url, "no such file") from exc
    except OSError as exc:
        raise _io_error(url, exc) from exc
    size = os.fstat(stream.fileno()).st_size
    return _Reply(url, 200, {"content-length": str(size)}, stream)


def _range_start(content_range: str) -> Optional[int]:
    """The first byte position of a `Content-Range: bytes FIRST-LAST/TOTAL` header, if it says one."""
    match = _CONTENT_RANGE_RE.match(content_range.strip())
    return int(match.group(1)) if match else None


def _check_complete(reply: _Reply, received: int) -> None:
    if reply.length is not None and received < reply.length:
        raise fetch_error("connection", reply.url, f"connection closed after {received} of {reply.length} bytes")


def _too_large(url: str, max_size: int, size: Optional[int]) -> FetchError:
    said = f" ({size} bytes)" if size is not None else ""
    return fetch_error("too-large", url, f"response larger than {max_size} bytes{said}", max_size=max_size)


def _io_error(where: str, exc: BaseException) -> FetchError:
    return fetch_error("io", where, str(getattr(exc, "strerror", None) or exc))


def _status_error(reply: _Reply) -> FetchError:
    status, host = reply.status, urlsplit(reply.url).netloc
    if status in (401, 403):
        hint = f"the server wants credentials: add them for {host} in auth.d/ of the local config"
    elif status == 404:
        hint = "check the image name, version and labels"
    else:
        hint = "the server failed; try again later" if status >= 500 else ""
    return fetch_error("http-status", reply.url, f"HTTP status {status}", hint=hint, status=status)


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _write_validator(part: Path, headers: Mapping[str, str]) -> None:
    """Remember what identifies the version being downloaded, for `If-Range` when resuming."""
    etag = headers.get("etag", "")
    # A weak ETag may not be used in If-Range (RFC 9110 13.1.5); Last-Modified may.
    validator = etag if etag and not etag.startswith("W/") else headers.get("last-modified", "")
    if validator and validator.isprintable():
        atomic_write(_validator_path(part), validator.encode("utf-8") + b"\n")
    else:
        _validator_path(part).unlink(missing_ok=True)


def _read_validator(part: Path) -> Optional[str]:
    try:
        return _validator_path(part).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _discard(part: Path) -> None:
    """Forget a partial download and its validator."""
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)
