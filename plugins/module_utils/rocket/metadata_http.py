"""The HTTP/1.1 server under the metadata service: one thread, non-blocking sockets, no http.server.

A pod's supervisor loads the service when an app first connects, often while the pod's apps are still
starting on the same CPUs; http.server (with socketserver, email and ssl) cost ~35 ms of CPU to import
there, and a thread per connection. The service needs little of HTTP: a request line, headers, a body
with a Content-Length, keep-alive, and small answers known up front. So one thread multiplexes all
connections with a selector, and a pod cannot make its supervisor start threads or hold more than
`max_connections` open:
- a connection beyond that cap is closed unanswered;
- a request head over MAX_HEAD bytes gets 431, a body over `max_body` 413 (unread), chunked bodies 411,
  and each of these closes the connection, so unread bytes are never parsed as the next request;
- a connection idle (or trickling) for `timeout` seconds is closed.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time

from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing in the supervisor
if TYPE_CHECKING:
    from typing import Callable, Dict, Optional, Tuple, Union

MAX_HEAD = 16 << 10
READ_SIZE = 64 << 10
SERVER = "rocket-metadata"
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    505: "HTTP Version Not Supported",
}


class Response(Record):
    """One answer: status, content type, body and extra headers."""

    FIELDS = ("status", "content_type", "body", "headers")

    def __init__(self, status: int, content_type: str, body: bytes, headers: Tuple[Tuple[str, str], ...] = ()) -> None:
        self.status = status
        self.content_type = content_type
        self.body = body
        self.headers = headers


class Request(Record):
    """One parsed request: method, target, header fields (names in lower case) and body."""

    FIELDS = ("method", "target", "headers", "body")

    def __init__(self, method: str, target: str, headers: Dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body


if TYPE_CHECKING:
    Handler = Callable[[Request], Response]


def _plain(status: int, message: str) -> Response:
    return Response(status, "text/plain; charset=us-ascii", message.encode("ascii") + b"\n")


def encode_response(response: Response, *, head_only: bool, close: bool) -> bytes:
    """The bytes of a response: status line, headers, and the body unless the request was HEAD."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    lines = [
        f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
        f"Server: {SERVER}",
        f"Date: {date}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class _Parsed(Record):
    """What parse_request found at the start of a buffer."""

    FIELDS = ("request", "error", "used", "close")

    def __init__(self, request: Optional[Request], error: Optional[Response], used: int, close: bool) -> None:
        self.request = request
        self.error = error  # answer this and close the connection
        self.used = used  # bytes of the buffer the request took
        self.close = close  # the client asked to close after the answer


def parse_request(buffer: Union[bytes, bytearray], *, max_body: int) -> Optional[_Parsed]:
    """The first request in `buffer`, an error to answer, or None while more bytes are needed."""
    end = buffer.find(b"\r\n\r\n")
    if (end < 0 and len(buffer) > MAX_HEAD) or end > MAX_HEAD:
        return _Parsed(None, _plain(431, "request head too large"), len(buffer), True)
    if end < 0:
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    words = lines[0].split(" ")
    if len(words) != 3 or not words[0].isalpha() or not words[1]:
        return _Parsed(None, _plain(400, "malformed request line"), len(buffer), True)
    method, target, version = words
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        return _Parsed(None, _plain(505, "use HTTP/1.1"), len(buffer), True)
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return _Parsed(None, _plain(400, "malformed header line"), len(buffer), True)
        headers[name.lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    if "transfer-encoding" in headers:
        return _Parsed(None, _plain(411, "send the body with a Content-Length"), len(buffer), True)
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or len(length_text) > 12:
        return _Parsed(None, _plain(400, "bad Content-Length"), len(buffer), True)
    length = int(length_text)
    if length > max_body:
        return _Parsed(None, _plain(413, f"the body exceeds {max_body} bytes"), len(buffer), True)
    start = end + 4
    if len(buffer) < start + length:
        return None
    body = bytes(buffer[start : start + length])
    return _Parsed(Request(method, target, headers, body), None, start + length, close)


class _Connection:
    """One client: bytes read and not yet parsed, bytes to send, and when it may idle no longer."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.incoming = bytearray()
        self.outgoing = bytearray()
        self.deadline = deadline
        self.closing = False  # close once `outgoing` is sent; read nothing more


class HttpServer:
    """Serves `handler` on a listening socket made elsewhere (possibly in another network namespace)."""

    def __init__(
        self, listener: socket.socket, handler: Handler, *, max_connections: int, timeout: float, max_body: int
    ) -> None:
        self.listener = listener
        self.handler = handler
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_body = max_body
        self._connections: Dict[int, _Connection] = {}
        self._selector = selectors.DefaultSelector()
        self._wake: Tuple[int, int] = (-1, -1)
        self._thread: Optional[threading.Thread] = None

    def start(self) -> threading.Thread:
        """Listen (if not yet) and serve from a daemon thread, which is returned."""
        if self._thread is not None:
            raise AssertionError("bug: HTTP server started twice")
        if not self.listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            self.listener.listen(64)
        self.listener.setblocking(False)
        self._wake = os.pipe()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._selector.register(self._wake[0], selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, name="rocket-metadata", daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        """Stop serving: close the listener and every connection; idempotent."""
        thread = self._thread
        if thread is None:
            return
        os.write(self._wake[1], b"x")
        thread.join()
        self._thread = None
        for fd in self._wake:
            os.close(fd)
        self._selector.close()

    def _loop(self) -> None:
        wake = self._wake[0]
        try:
            while True:
                deadlines = [connection.deadline for connection in self._connections.values()]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                for key, events in self._selector.select(timeout):
                    if key.fileobj is self.listener:
                        self._accept()
                    elif key.fd == wake:
                        return
                    elif key.fd in self._connections:
                        self._ready(self._connections[key.fd], events)
                now = time.monotonic()
                for connection in [c for c in self._connections.values() if c.deadline <= now]:
                    self._close(connection)
        finally:
            for connection in list(self._connections.values()):
                self._close(connection)
            self._selector.unregister(self.listener)
            self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNABORTED or EMFILE: the next readiness tries again
            if len(self._connections) >= self.max_connections:
                sock.close()  # unanswered: a pod cannot hold more of its supervisor than this
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stall
            connection = _Connection(sock, time.monotonic() + self.timeout)
            self._connections[sock.fileno()] = connection
            self._selector.register(sock, selectors.EVENT_READ)

    def _ready(self, connection: _Connection, events: int) -> None:
        if events & selectors.EVENT_READ and not connection.closing:
            try:
                data = connection.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close(connection)
                return
            if data == b"":
                self._close(connection)
                return
            if data:
                connection.incoming += data
                connection.deadline = time.monotonic() + self.timeout
                self._answer(connection)
        self._send(connection)

    def _answer(self, connection: _Connection) -> None:
        """Answer every complete request in the buffer, in order (pipelining)."""
        while not connection.closing:
            parsed = parse_request(connection.incoming, max_body=self.max_body)
            if parsed is None:
                return
            del connection.incoming[: parsed.used]
            request = parsed.request
            if request is None:
                response, head_only, close = parsed.error, False, True
            else:
                try:
                    response, head_only, close = self.handler(request), request.method == "HEAD", parsed.close
                except Exception:  # a bug in the handler must not take the service down with it
                    response, head_only, close = _plain(500, "internal error"), False, True
            connection.outgoing += encode_response(response, head_only=head_only, close=close)  # type: ignore[arg-type]
            if close:
                connection.closing = True
                connection.incoming.clear()

    def _send(self, connection: _Connection) -> None:
        if connection.outgoing:
            try:
                sent = connection.sock.send(connection.outgoing)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(connection)
                return
            del connection.outgoing[:sent]
            connection.deadline = time.monotonic() + self.timeout
        if connection.closing and not connection.outgoing:
            self._close(connection)
            return
        wanted = selectors.EVENT_WRITE if connection.outgoing else 0
        wanted |= 0 if connection.closing else selectors.EVENT_READ
        if self._selector.get_key(connection.sock).events != wanted:
            self._selector.modify(connection.sock, wanted)

    def _close(self, connection: _Connection) -> None:
        fd = connection.sock.fileno()
        if self._connections.pop(fd, None) is None:
            return
        self._selector.unregister(connection.sock)
        connection.sock.close()
