"""The metadata service's address and token: cheap to import, so a pod's environment is ready before the
service itself is loaded (when an app first connects: stage1/supervisor.py)."""

from __future__ import annotations

import binascii
import os

TOKEN_BYTES = 32


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def new_token() -> str:
    """A fresh URL-safe token of 256 random bits for one pod's metadata URL."""
    # secrets.token_urlsafe, without importing secrets (hmac, random) or base64 on every pod start.
    encoded = binascii.b2a_base64(os.urandom(TOKEN_BYTES), newline=False).translate(_URL_SAFE)
    return encoded.rstrip(b"=").decode("ascii")


def metadata_url(host: str, port: int, token: str) -> str:
    """The value of AC_METADATA_URL: `http://127.0.0.1:2375/<token>`."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/{token}"
