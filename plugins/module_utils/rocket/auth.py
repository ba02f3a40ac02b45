"""Whom the config lets rocket talk to: credentials (`auth.d/*.json`) and extra CA certificates (`certs.d/`).

Credentials use rkt's format (rktKind `auth`, rktVersion `v1`).

Both the system and the local config folder may hold `auth.d/*.json`; a domain listed in the local
folder replaces the system's entry for that domain. Within one folder a domain may appear in one file
only. A domain is a host with an optional port (`example.com`, `registry.test:8443`) and matches a
URL's host and port exactly (port 443 may be left out). Credentials go only to HTTPS URLs.

    {"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"],
     "type": "basic", "credentials": {"user": "u", "password": "p"}}
    ... "type": "oauth", "credentials": {"token": "t"}}           -> Authorization: Bearer t
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from .errors import UsageError
from .paths import auth_dir, ca_dir

MAX_AUTH_FILE = 1 << 20

# What rkt writes into the same folder for Docker registries; rocket fetches no Docker images.
_IGNORED_KINDS = frozenset({"dockerAuth"})
_TOP_FIELDS = frozenset({"rktKind", "rktVersion", "domains", "type", "credentials"})
_CREDENTIAL_FIELDS = {"basic": ("user", "password"), "oauth": ("token",)}
# Printable ASCII without spaces: what fits in one header value without quoting or folding.
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
_HINT = 'see rkt\'s auth format: {"rktKind": "auth", "rktVersion": "v1", "domains": [...], "type": ..., ...}'


def trusted_ca_files(local_config: Path) -> List[Path]:
    """The extra CA certificate files of the local config, sorted; none if the folder is absent."""
    folder = ca_dir(local_config)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".pem", ".crt") and p.is_file())


def normalize_domain(domain: str) -> Optional[str]:
    """`Host[:port]` lower-cased with port 443 dropped, or None if `domain` is not a host and port."""
    if not domain or domain != domain.strip() or any(c in domain for c in "/?#@\\"):
        return None
    try:
        parts = urlsplit("//" + domain)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host:
        return None
    if ":" in host:  # an IPv6 literal keeps its brackets in a Host header
        host = f"[{host}]"
    return host if port in (None, 443) else f"{host}:{port}"


def url_domain(url: str) -> Optional[str]:
    """The normalized `host[:port]` of an https URL, or None for any other URL (or one with user info)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return normalize_domain(parts.netloc) if parts.scheme == "https" else None


@dataclass(frozen=True)
class Credential:
    """One `Authorization` header value and the file it came from."""

    kind: str
    header: str
    source: Path

    def __repr__(self) -> str:
        # Never print a secret, not even in a traceback or a debug dump.
        return f"Credential(kind={self.kind!r}, source={str(self.source)!r})"


@dataclass
class AuthConfig:
    """Credentials by normalized domain; `headers_for` is the only way they leave this object."""

    by_domain: Dict[str, Credential] = field(default_factory=dict)

    def headers_for(self, url: str) -> Dict[str, str]:
        """The `Authorization` header for `url` if it is https and its host has credentials, else {}."""
        domain = url_domain(url)
        credential = self.by_domain.get(domain) if domain else None
        return {"Authorization": credential.header} if credential else {}

    def domains(self) -> List[str]:
        """The domains that have credentials, sorted."""
        return sorted(self.by_domain)


def _fail(path: Path, field_name: str, problem: str) -> UsageError:
    return UsageError(f"{path}: {field_name}: {problem}", hint=_HINT, file=str(path), field=field_name)


def _string(path: Path, obj: Dict[str, Any], key: str, *, where: str = "") -> str:
    name = f"{where}.{key}" if where else key
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(path, name, "must be a non-empty string")
    return value


def _credential(path: Path, kind: str, raw: object) -> Credential:
    if not isinstance(raw, dict):
        raise _fail(path, "credentials", "must be an object")
    wanted = _CREDENTIAL_FIELDS[kind]
    extra = sorted(set(raw) - set(wanted))
    if extra:
        raise _fail(path, f"credentials.{extra[0]}", f"unknown field for type {kind!r} (expected {', '.join(wanted)})")
    if kind == "basic":
        user = _string(path, raw, "user", where="credentials")
        password = _string(path, raw, "password", where="credentials")
        if ":" in user or not user.isprintable():
            raise _fail(path, "credentials.user", "must be printable and contain no ':'")
        if not password.isprintable():
            raise _fail(path, "credentials.password", "must be printable")
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return Credential(kind, f"Basic {encoded}", path)
    token = _string(path, raw, "token", where="credentials")
    if not _TOKEN_RE.fullmatch(token):
        raise _fail(path, "credentials.token", "must be printable ASCII without spaces")
    return Credential(kind, f"Bearer {token}", path)


def parse_auth_file(path: Path) -> Dict[str, Credential]:
    """Validate one auth file and return its credential by normalized domain ({} for dockerAuth files)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_AUTH_FILE + 1)
    except OSError as exc:
        hint = "check the file's permissions"
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint=hint, file=str(path)) from exc
    if len(data) > MAX_AUTH_FILE:
        raise _fail(path, "(file)", f"larger than {MAX_AUTH_FILE} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _fail(path, "(file)", f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _fail(path, "(file)", "must hold a JSON object")
    kind = _string(path, doc, "rktKind")
    if kind in _IGNORED_KINDS:
        return {}
    if kind != "auth":
        raise _fail(path, "rktKind", f"unknown kind {kind!r} (expected 'auth')")
    if _string(path, doc, "rktVersion") != "v1":
        raise _fail(path, "rktVersion", f"unknown version {doc['rktVersion']!r} (expected 'v1')")
    extra = sorted(set(doc) - _TOP_FIELDS)
    if extra:
        raise _fail(path, extra[0], "unknown field")
    kind = _string(path, doc, "type")
    if kind not in _CREDENTIAL_FIELDS:
        raise _fail(path, "type", f"unknown type {kind!r} (expected 'basic' or 'oauth')")
    credential = _credential(path, kind, doc.get("credentials"))
    domains = doc.get("domains")
    if not isinstance(domains, list) or not domains:
        raise _fail(path, "domains", "must be a non-empty list of host[:port] strings")
    result: Dict[str, Credential] = {}
    for index, raw in enumerate(domains):
        domain = normalize_domain(raw) if isinstance(raw, str) else None
        if domain is None:
            raise _fail(path, f"domains[{index}]", f"{raw!r} is not a host or host:port")
        if domain in result:
            raise _fail(path, f"domains[{index}]", f"{raw!r} is listed twice")
        result[domain] = credential
    return result


def load_auth_dir(config_dir: Path) -> Dict[str, Credential]:
    """Credentials from `<config_dir>/auth.d/*.json` (not recursive); a domain in two files is an error."""
    folder = auth_dir(config_dir)
    if not folder.is_dir():
        return {}
    merged: Dict[str, Credential] = {}
    for path in sorted(folder.glob("*.json")):
        if not path.is_file():
            continue
        for domain, credential in parse_auth_file(path).items():
            if domain in merged:
                raise UsageError(
                    f"{path}: domain {domain!r} already has credentials in {merged[domain].source}",
                    hint="keep each domain in one file per config folder",
                    file=str(path),
                    field="domains",
                )
            merged[domain] = credential
    return merged


def load_auth(local_config: Path, system_config: Path) -> AuthConfig:
    """Credentials from the system and local config folders; the local folder wins per domain."""
    merged = load_auth_dir(system_config)
    merged.update(load_auth_dir(local_config))
    return AuthConfig(merged)
