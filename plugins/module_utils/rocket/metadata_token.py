"""The metadata service's address and token: cheap to import, so a pod's environment is ready before the
service itself (and http.server) is loaded."""

from __future__ import annotations

import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh URL-safe token of 256 random bits for one pod's metadata URL."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def metadata_url(host: str, port: int, token: str) -> str:
    """The value of AC_METADATA_URL: `http://127.0.0.1:2375/<token>`."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/{token}"
