"""Where a key to trust comes from (a file, a URL, or the prefix's discovery page) and whether it is acceptable.

Shared by `rocket trust` and the `appc.rocket.trust` module: both obtain the offered keys here, refuse a
revoked or expired key or one that does not match a pinned fingerprint here, and only then store it
with the Keystore. The network stack is loaded only when a key is downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Iterable, List, Optional, Tuple

from .errors import FetchError, TrustError, UsageError
from .keystore import check_fingerprint
from .openpgp import KeyInfo, inspect_key, split_public_keys

if TYPE_CHECKING:
    from .transport import HttpClient

MAX_KEY_SIZE = 1 << 20
URL_SCHEMES = ("https://", "http://", "file://")

OfferedKey = Tuple[bytes, KeyInfo]


def obtain_keys(
    location: Optional[str],
    *,
    prefix: Optional[str],
    local_config: Path,
    system_config: Path,
    insecure: AbstractSet[str] = frozenset(),
) -> List[OfferedKey]:
    """The public keys at `location` (a file path or URL), or discovered for `prefix` when it is None."""
    client: Optional[HttpClient] = None

    def http() -> HttpClient:
        nonlocal client
        if client is None:
            from .transport import client_from_config

            client = client_from_config(local_config, system_config, insecure=insecure)
        return client

    if location is None:
        if not prefix:
            raise UsageError("a root key cannot be discovered", hint="give the key file or URL")
        from .discovery import discover, load_mirrors

        endpoints = discover(
            prefix,
            {},
            client=http(),
            insecure_http="http" in insecure,
            mirrors=load_mirrors(local_config),
            want="keys",
        )
        locations = list(endpoints.keys)
    else:
        locations = [location]
    found: List[OfferedKey] = []
    for where in locations:
        is_url = where.startswith(URL_SCHEMES)
        data = http().get(where, max_size=MAX_KEY_SIZE).body if is_url else read_key_file(where)
        found.extend((key, inspect_key(key)) for key in split_public_keys(data))
    if not found:
        raise FetchError(
            f"no keys found for {prefix or location}",
            hint="check the discovery page's ac-discovery-pubkeys, or give the key file or URL",
            reason="not-found",
        )
    return found


def read_key_file(path: str) -> bytes:
    """The bytes of a key file on this host, bounded by MAX_KEY_SIZE; UsageError naming the file."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_KEY_SIZE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror}", hint="check the path", path=path) from exc
    if len(data) > MAX_KEY_SIZE:
        raise UsageError(
            f"key file {path} is over {MAX_KEY_SIZE} bytes", hint="a key file holds one exported public key"
        )
    return data


def check_offered_key(info: KeyInfo, *, pinned: Optional[Iterable[str]] = None, now: Optional[float] = None) -> None:
    """Refuse a revoked or expired key, and with `pinned` fingerprints one that is not among them; TrustError."""
    moment = time.time() if now is None else now
    if info.revoked or (info.expires is not None and info.expires < moment):
        raise TrustError(
            f"key {info.fingerprint} is {'revoked' if info.revoked else 'expired'}",
            hint="ask the publisher for its current key",
            reason="revoked-key" if info.revoked else "expired-key",
            fingerprint=info.fingerprint,
        )
    if pinned is None:
        return
    pins = sorted({check_fingerprint(value) for value in pinned})
    if info.fingerprint not in pins:
        shown = pins[0] if len(pins) == 1 else "any of " + ", ".join(pins)
        raise TrustError(
            f"the key offered is {info.fingerprint}, not the pinned {shown}",
            hint="the key was substituted or the pin is wrong; check the fingerprint with the publisher",
            reason="fingerprint-mismatch",
            fingerprint=info.fingerprint,
        )
