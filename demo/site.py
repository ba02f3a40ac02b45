"""The demo's image site: appc discovery and signed images over HTTPS on 127.0.0.1.

    site.py start --root DIR --state DIR [--name localhost] [--port 443]   start it in the background (idempotent)
    site.py stop --state DIR                                                stop it

Discovery answers `GET /<anything>?ac-discovery=1` for the prefix `NAME/demo`: images at
`https://NAME/images/NAME/demo/{name}-{version}-{os}-{arch}.{ext}`, keys at `https://NAME/demo/pubkeys.gpg`.
Everything else is a file under --root. The certificate is for NAME, localhost and 127.0.0.1, issued by a
throw-away CA made on first start in --state (`ca.pem` is what a host trusts, in its certs.d). Prints
"started" or "running" (for Ansible's changed_when). NAME is `localhost` for the demo on this machine;
molecule's fleet scenario serves `images.rocket.test` on port 8443, which its qemu guests reach.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import ipaddress
import os
import signal
import ssl
import sys
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List

NAME = "localhost"


def discovery() -> str:
    prefix = f"{NAME}/demo"
    return (
        "<!DOCTYPE html><html><head>"
        f'<meta name="ac-discovery" content="{prefix} https://{NAME}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}">'
        f'<meta name="ac-discovery-pubkeys" content="{prefix} https://{NAME}/demo/pubkeys.gpg">'
        "</head><body>rocket demo image site</body></html>\n"
    )


def make_certificates(state: Path) -> None:
    """A CA and a server certificate for localhost/127.0.0.1, unless they exist."""
    if (state / "server.pem").exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rocket demo CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(NAME), x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    state.mkdir(parents=True, exist_ok=True)
    (state / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (state / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM) + key_pem)
    os.chmod(state / "server.pem", 0o600)


class Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if "ac-discovery=1" in self.path.partition("?")[2]:
            body = discovery().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")


def running(state: Path) -> bool:
    try:
        pid = int((state / "site.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def serve(root: Path, state: Path, port: int) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(state / "server.pem")
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=str(root)))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop", "serve"))
    parser.add_argument("--root", type=Path)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--name", default="localhost")
    args = parser.parse_args(argv)
    global NAME
    NAME = args.name
    state = args.state.resolve()
    if args.action == "stop":
        if running(state):
            os.kill(int((state / "site.pid").read_text()), signal.SIGTERM)
            print("stopped")
        return 0
    if args.action == "serve":
        serve(args.root, state, args.port)
        return 0
    if running(state):
        print("running")
        return 0
    make_certificates(state)
    log = open(state / "site.log", "ab")
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.execv(sys.executable, [sys.executable, __file__, "serve", "--root", str(args.root.resolve()),
                                  "--state", str(state), "--port", str(args.port), "--name", NAME])  # fmt: skip
    (state / "site.pid").write_text(f"{pid}\n")
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", args.port), timeout=1).close()
            print("started")
            return 0
        except OSError:
            time.sleep(0.05)
    print(f"the site did not start; see {state / 'site.log'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
