"""The trust policy: which images need which signatures, beyond rkt's "signed by a trusted key".

`/etc/rocket/policy.json` (local) wins over `/usr/lib/rocket/policy.json` (system):

    {
      "version": 3,
      "default": {"type": "reject"},
      "scopes": {
        "example.com/foo": {"type": "signedBy", "keys": ["<fingerprint>", ...]},
        "example.com/dev": {"type": "insecureAcceptAnything"}
      },
      "deny": ["<fingerprint>", ...]
    }

- `version` (required, integer >= 0): rocket remembers the highest version it has loaded in
  `<state dir>/trust/policy-version` and refuses a lower one (a rolled-back policy).
- `default` (optional, reject if absent): the requirement for names no scope covers.
- `scopes` (optional): requirements by image name prefix; the most specific prefix that covers a name on
  whole path components wins (`example.com/foo` covers `example.com/foo/bar`, not `example.com/foobar`).
- A requirement is `{"type": "signedBy"}` (a signature by a keystore key trusted for the name; with
  `"keys"`, only by those of them whose primary fingerprints are listed), `{"type": "insecureAcceptAnything"}`
  (no signature needed) or `{"type": "reject"}`.
- `deny` (optional): fingerprints (primary keys or subkeys) whose signatures are refused everywhere, even
  where a scope accepts anything.

Fingerprints are full: 40 hex digits (v4 keys) or 64 (v5/v6), any case. Unknown fields are errors.
Without any policy file rocket behaves as rkt: every name needs a signature by a trusted key (version 0).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

from .errors import ManifestError, TrustError, UsageError
from .fileio import atomic_write
from .keystore import covering_prefixes
from .locks import FileLock
from .names import check_ac_identifier
from .paths import policy_path, policy_version_lock, policy_version_path

SIGNED_BY = "signedBy"
INSECURE_ACCEPT_ANYTHING = "insecureAcceptAnything"
REJECT = "reject"
REQUIREMENT_TYPES = (SIGNED_BY, INSECURE_ACCEPT_ANYTHING, REJECT)

_FINGERPRINT_RE = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_TOP_FIELDS = frozenset({"version", "default", "scopes", "deny"})
_MAX_VERSION = 2**63 - 1


# --- the policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """What a scope demands: `type` is signedBy, insecureAcceptAnything or reject."""

    type: str
    keys: Optional[FrozenSet[str]] = None  # signedBy only: None = every keystore key trusted for the name


@dataclass(frozen=True)
class Policy:
    """A loaded, validated trust policy."""

    version: int
    default: Requirement
    scopes: Dict[str, Requirement] = field(default_factory=dict)
    deny: FrozenSet[str] = frozenset()
    source: Optional[Path] = None  # None: no policy file, rkt's behaviour

    def requirement_for(self, name: str) -> Tuple[str, Requirement]:
        """The (scope prefix, requirement) for image `name`: the longest covering prefix, '' for the default."""
        try:
            check_ac_identifier(name, field="name")
        except ManifestError as exc:
            raise UsageError(exc.message, hint="an image name looks like example.com/app", name=name) from exc
        for prefix in reversed(covering_prefixes(name)):
            if prefix in self.scopes:
                return prefix, self.scopes[prefix]
        return "", self.default

    def denied(self, *fingerprints: str) -> bool:
        """True if any given fingerprint (primary or subkey; or a 16-digit key ID) is on the deny-list."""
        for given in fingerprints:
            fpr = given.lower()
            if fpr in self.deny:
                return True
            if _KEY_ID_RE.fullmatch(fpr) and any(_key_id_matches(fpr, denied) for denied in self.deny):
                return True
        return False


def _key_id_matches(key_id: str, fingerprint: str) -> bool:
    """A v4 key ID is the end of its fingerprint; a v5/v6 key ID is the start."""
    return fingerprint.endswith(key_id) if len(fingerprint) == 40 else fingerprint.startswith(key_id)


RKT_POLICY = Policy(version=0, default=Requirement(SIGNED_BY))


# --- parsing ---------------------------------------------------------------------------------------


def parse_policy(data: bytes, *, source: Path) -> Policy:
    """Validate policy JSON strictly; TrustError naming the file and the offending `field`."""
    where = str(source)
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TrustError(
            f"trust policy {where} is not valid JSON: {exc}",
            hint="fix the file (see the format in rocket's policy documentation)",
            path=where,
            field="",
        ) from exc
    if not isinstance(document, dict):
        raise _bad(where, "", "must be a JSON object")
    for key in document:
        if key not in _TOP_FIELDS:
            raise _bad(where, key, f"is not a policy field (known: {', '.join(sorted(_TOP_FIELDS))})")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= _MAX_VERSION:
        raise _bad(where, "version", "must be an integer >= 0 (raise it with every change)")
    default = _requirement(document["default"], where, "default") if "default" in document else Requirement(REJECT)
    scopes_value = document.get("scopes", {})
    if not isinstance(scopes_value, dict):
        raise _bad(where, "scopes", "must be an object of image name prefixes")
    scopes: Dict[str, Requirement] = {}
    for prefix, value in scopes_value.items():
        at = f'scopes["{prefix}"]'
        try:
            check_ac_identifier(prefix, field=at)
        except ManifestError as exc:
            raise _bad(where, at, "is not an image name prefix (an AC identifier like example.com/app)") from exc
        scopes[prefix] = _requirement(value, where, at)
    deny_value = document.get("deny", [])
    if not isinstance(deny_value, list):
        raise _bad(where, "deny", "must be a list of fingerprints")
    deny = frozenset(_fingerprint(value, where, f"deny[{index}]") for index, value in enumerate(deny_value))
    return Policy(version=version, default=default, scopes=scopes, deny=deny, source=source)


def _requirement(value: Any, where: str, at: str) -> Requirement:
    if not isinstance(value, dict):
        raise _bad(where, at, 'must be an object like {"type": "signedBy"}')
    kind = value.get("type")
    if kind not in REQUIREMENT_TYPES:
        raise _bad(where, f"{at}.type", f"must be one of {', '.join(REQUIREMENT_TYPES)}, not {kind!r}")
    allowed = {"type", "keys"} if kind == SIGNED_BY else {"type"}
    for key in value:
        if key not in allowed:
            raise _bad(where, f"{at}.{key}", f"is not a field of a {kind} requirement")
    if "keys" not in value:
        return Requirement(kind)
    keys = value["keys"]
    if not isinstance(keys, list) or not keys:
        raise _bad(where, f"{at}.keys", "must be a non-empty list of fingerprints (leave it out for all trusted keys)")
    return Requirement(
        kind, frozenset(_fingerprint(key, where, f"{at}.keys[{index}]") for index, key in enumerate(keys))
    )


def _fingerprint(value: Any, where: str, at: str) -> str:
    if not isinstance(value, str) or not _FINGERPRINT_RE.fullmatch(value):
        raise _bad(where, at, f"must be a full key fingerprint (40 or 64 hex digits), not {value!r}")
    return value.lower()


def _bad(where: str, at: str, problem: str) -> TrustError:
    subject = f"field {at}" if at else "the document"
    return TrustError(
        f"trust policy {where}: {subject} {problem}",
        hint="fix the policy file; until then rocket trusts no image",
        path=where,
        field=at,
    )


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


# --- loading, with rollback protection -------------------------------------------------------------


def load_policy(*, local_config: Path, system_config: Path, state_dir: Path) -> Policy:
    """The effective policy (local file, else system file, else rkt's), refusing a rolled-back version."""
    policy = RKT_POLICY
    for config in (Path(local_config), Path(system_config)):
        path = policy_path(config)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TrustError(f"cannot read trust policy {path}: {exc.strerror}", path=str(path)) from exc
        policy = parse_policy(data, source=path)
        break
    _check_rollback(policy, Path(state_dir))
    return policy


def _check_rollback(policy: Policy, state_dir: Path) -> None:
    """Refuse a version below the highest loaded so far; record a higher one (under the version flock)."""
    version_file = policy_version_path(state_dir)
    if policy.version == 0 and not version_file.exists():
        return  # nothing loaded before and nothing to record: leave the state folder alone
    try:
        version_file.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with FileLock(policy_version_lock(state_dir)):
            highest = _read_version(version_file)
            if highest is not None and policy.version < highest:
                what = str(policy.source) if policy.source else "no policy file (rkt's default policy, version 0)"
                raise TrustError(
                    f"policy rollback: {what} has version {policy.version}, "
                    f"but this host has already loaded version {highest}",
                    hint=f"restore the newer policy, or publish this one with a version above {highest}",
                    loaded=policy.version,
                    highest=highest,
                    path=str(policy.source or ""),
                )
            if highest is None or policy.version > highest:
                atomic_write(version_file, f"{policy.version}\n".encode("ascii"), mode=0o644)
    except OSError as exc:
        raise TrustError(
            f"cannot check the trust policy version in {version_file}: {exc.strerror}",
            hint="run rocket as root, or check the state folder's permissions",
            path=str(version_file),
        ) from exc


def _read_version(path: Path) -> Optional[int]:
    """The stored highest version, None if none; a damaged file fails closed."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = "?"
    if not text.isdigit():
        raise TrustError(
            f"stored trust policy version in {path} is damaged: {text[:20]!r}",
            hint=f"write the highest policy version you have deployed into {path}",
            path=str(path),
        )
    return int(text)


# --- editing the deny-list (the trust module's `deny`) ---------------------------------------------


@dataclass(frozen=True)
class DenyListEdit:
    """A new local policy file whose deny-list differs from the effective one; nothing is written yet."""

    path: Path
    data: bytes
    before: FrozenSet[str]
    after: FrozenSet[str]


def edit_deny_list(
    *,
    local_config: Path,
    system_config: Path,
    state_dir: Path,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    exact: Optional[Iterable[str]] = None,
) -> Optional[DenyListEdit]:
    """The local policy with the deny-list changed and the version raised past any loaded; None if no change.

    Starts from the effective policy document (local, else system, else rkt's default written out as
    signedBy) so that only `deny` and `version` change; reads files, writes none.
    """
    document = _effective_document(Path(local_config), Path(system_config))
    before = frozenset(str(value).lower() for value in document.get("deny", []))
    if exact is not None:
        after = frozenset(_fingerprint(value, "the request", "deny") for value in exact)
    else:
        added = {_fingerprint(value, "the request", "deny") for value in add}
        removed = {_fingerprint(value, "the request", "deny") for value in remove}
        after = frozenset((before | added) - removed)
    if after == before:
        return None
    highest = _read_version(policy_version_path(Path(state_dir))) or 0
    edited = dict(document)
    edited["version"] = max(int(document.get("version", 0)), highest) + 1
    edited["deny"] = sorted(after)
    if not edited["deny"]:
        del edited["deny"]
    data = (json.dumps(edited, indent=2, sort_keys=True) + "\n").encode("utf-8")
    target = policy_path(Path(local_config))
    parse_policy(data, source=target)  # what is written must load
    return DenyListEdit(path=target, data=data, before=before, after=after)


def write_policy(edit: DenyListEdit) -> None:
    """Replace the local policy file atomically with an edit's content."""
    edit.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    atomic_write(edit.path, edit.data, mode=0o644)


def _effective_document(local_config: Path, system_config: Path) -> Dict[str, Any]:
    """The JSON of the policy file in force; rkt's behaviour as a document if there is none."""
    for config in (local_config, system_config):
        path = policy_path(config)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TrustError(f"cannot read trust policy {path}: {exc.strerror}", path=str(path)) from exc
        parse_policy(data, source=path)  # refuse to build on a broken policy
        return dict(json.loads(data.decode("utf-8")))
    # Without a file every name needs a trusted signature; a file without "default" would reject all.
    return {"version": RKT_POLICY.version, "default": {"type": SIGNED_BY}}
