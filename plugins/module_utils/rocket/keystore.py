"""The trusted keys: which public keys may sign images of which names.

Two folders of the same shape, the system config (vendor, `/usr/lib/rocket`) and the local config
(operator, `/etc/rocket`):

    trustedkeys/root.d/<fingerprint>                     a key trusted for every name
    trustedkeys/prefix.d/<prefix path>/<fingerprint>     a key trusted for names under the prefix

A key file is named by the lower-case hex fingerprint of its primary key (a mismatch is an error) and
holds that one public key, armored or binary. The local file wins over the system file of the same
relative path; an empty local file masks the system key. A prefix covers a name on whole path
components: `example.com/foo` covers `example.com/foo/bar`, never `example.com/foobar`.

Nothing is cached: every call reads the folders again, so a key removed by another process is gone.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

from .errors import ManifestError, NotFoundError, TrustError, UsageError
from .fileio import atomic_write, fsync_dir
from .names import check_ac_identifier
from .openpgp import KeyInfo, Runner, inspect_key
from .paths import key_path, prefix_keys_root, scope_dir

FINGERPRINT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

_TRUST_HINT = "add a key with `rocket trust --prefix PREFIX KEY-FILE` or `rocket trust --root KEY-FILE`"


# --- names -----------------------------------------------------------------------------------------


def prefix_covers(prefix: str, name: str) -> bool:
    """True if `prefix` covers `name` on whole path components ('' covers every name)."""
    return prefix == "" or name == prefix or name.startswith(prefix + "/")


def covering_prefixes(name: str) -> List[str]:
    """Every prefix that covers `name`, shortest first: `a/b/c` -> [`a`, `a/b`, `a/b/c`]."""
    parts = name.split("/")
    return ["/".join(parts[: count + 1]) for count in range(len(parts))]


def check_fingerprint(value: str, *, what: str = "fingerprint") -> str:
    """Return `value` as lower-case hex if it is a full fingerprint (40 or 64 hex digits), else UsageError."""
    text = value.strip().lower()
    if not FINGERPRINT_RE.fullmatch(text):
        raise UsageError(
            f"{what} {value!r} is not a full key fingerprint (40 or 64 hex digits)",
            hint="see `gpg --with-colons --show-keys KEY-FILE`, record fpr",
            fingerprint=value,
        )
    return text


def _check_name(name: str, *, what: str) -> str:
    try:
        return check_ac_identifier(name, field=what)
    except ManifestError as exc:
        raise UsageError(exc.message, hint="an image name prefix looks like example.com/app", **{what: name}) from exc


def _scope(prefix: Optional[str], root: bool) -> str:
    """The scope ('' for root) of a request that names a prefix or root, never both or neither."""
    if root == (prefix is not None):
        raise UsageError("give either a prefix or root, not both and not neither", hint=_TRUST_HINT)
    return "" if root else _check_name(prefix or "", what="prefix")


# --- the keystore ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredKey:
    """One effective trusted key: where it lives and what gpg says about it."""

    fingerprint: str
    scope: str
    source: str
    path: Path
    user_ids: List[str] = field(default_factory=list)
    expires: Optional[float] = None
    revoked: bool = False
    subkey_fingerprints: List[str] = field(default_factory=list)
    created: float = 0.0
    algorithm: str = ""
    data: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def from_info(cls, info: KeyInfo, *, scope: str, source: str, path: Path, data: bytes) -> StoredKey:
        """A stored key described by what gpg said about it."""
        return cls(
            fingerprint=info.fingerprint,
            scope=scope,
            source=source,
            path=path,
            user_ids=info.user_ids,
            expires=info.expires,
            revoked=info.revoked,
            subkey_fingerprints=info.subkey_fingerprints,
            created=info.created,
            algorithm=info.algorithm,
            data=data,
        )


class Keystore:
    """Trusted keys merged from the system and the local config; no state beyond the two folders."""

    def __init__(
        self,
        *,
        local_config: Path,
        system_config: Path,
        gpg: str = "gpg",
        runner: Runner = subprocess.run,
    ) -> None:
        self.local_config = Path(local_config)
        self.system_config = Path(system_config)
        self.gpg = gpg
        self.runner = runner

    def add(self, key_data: bytes, *, prefix: Optional[str] = None, root: bool = False) -> StoredKey:
        """Store a public key (as given) in the local config for a prefix or root; returns the stored key."""
        scope = _scope(prefix, root)
        info = inspect_key(key_data, gpg=self.gpg, runner=self.runner)
        folder = scope_dir(self.local_config, scope)
        _make_folders(folder)
        path = folder / info.fingerprint
        atomic_write(path, key_data, mode=0o644)
        return StoredKey.from_info(info, scope=scope, source="local", path=path, data=key_data)

    def remove(self, fingerprint: str, *, prefix: Optional[str] = None, root: bool = False) -> List[Path]:
        """Stop trusting a key in one scope: delete the local file, mask a system one; returns what changed."""
        scope = _scope(prefix, root)
        fpr = check_fingerprint(fingerprint)
        local = key_path(self.local_config, scope, fpr)
        system = key_path(self.system_config, scope, fpr)
        local_key = _is_key_file(local)
        system_key = _is_key_file(system)
        masked = local.is_file() and not local_key
        if not local_key and not (system_key and not masked):
            where = "root" if scope == "" else f"prefix {scope}"
            raise NotFoundError(
                f"no trusted key {fpr} for {where}",
                hint="see `rocket trust list` for the keys and their scopes",
                fingerprint=fpr,
                scope=scope,
            )
        if system_key:
            # Mask the vendor key; a deleted local copy alone would bring the vendor's back.
            _make_folders(local.parent)
            atomic_write(local, b"", mode=0o644)
        else:
            local.unlink()
            fsync_dir(local.parent)
        return [local]

    def list(self) -> List[StoredKey]:
        """Every effective key, system and local merged (local wins, empty local files mask), by scope."""
        scopes: Set[str] = {""}
        for config in (self.system_config, self.local_config):
            scopes.update(_prefix_folders(prefix_keys_root(config)))
        return self._effective(sorted(scopes))

    def keys_for(self, name: str) -> List[StoredKey]:
        """The keys trusted for image `name`: root keys plus those of every prefix that covers it."""
        name = _check_name(name, what="name")
        return self._effective([""] + covering_prefixes(name))

    def _effective(self, scopes: Iterable[str]) -> List[StoredKey]:
        """The effective keys of the given scopes, each scope's keys sorted by fingerprint."""
        keys: List[StoredKey] = []
        for scope in scopes:
            chosen: Dict[str, Tuple[str, Path]] = {}
            for source, config in (("system", self.system_config), ("local", self.local_config)):
                for file_name, path in _key_files(scope_dir(config, scope)):
                    try:
                        size = path.stat().st_size
                    except FileNotFoundError:
                        continue  # removed by another process since the folder was listed
                    if size == 0:
                        chosen.pop(file_name, None)  # a mask (an empty system file masks nothing)
                    else:
                        chosen[file_name] = (source, path)
            for file_name in sorted(chosen):
                source, path = chosen[file_name]
                keys.append(self._load(path, scope=scope, source=source, file_name=file_name))
        return keys

    def _load(self, path: Path, *, scope: str, source: str, file_name: str) -> StoredKey:
        """Read and describe one key file, checking that its name is its primary fingerprint."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TrustError(
                f"cannot read key file {path}: {exc.strerror}", hint="check its permissions", path=str(path)
            ) from exc
        try:
            info = inspect_key(data, gpg=self.gpg, runner=self.runner)
        except TrustError as exc:
            raise TrustError(
                f"invalid key file {path}: {exc.message}",
                hint=f"replace it with the public key it should hold, or remove it; {exc.hint}",
                path=str(path),
            ) from exc
        if info.fingerprint != file_name:
            raise TrustError(
                f"key file {path} is named {file_name} but holds the key {info.fingerprint}",
                hint=f"a key file is named by its key's fingerprint: rename it to {info.fingerprint} or remove it",
                path=str(path),
                expected=file_name,
                actual=info.fingerprint,
            )
        return StoredKey.from_info(info, scope=scope, source=source, path=path, data=data)


# --- folders ---------------------------------------------------------------------------------------


def _is_key_file(path: Path) -> bool:
    """True if `path` is a non-empty file (an empty one is a mask)."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _key_files(folder: Path) -> List[Tuple[str, Path]]:
    """The key files directly in one scope folder (sub-folders are longer prefixes; dot files are skipped)."""
    try:
        entries = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TrustError(f"cannot list key folder {folder}: {exc.strerror}", path=str(folder)) from exc
    # Dot files are atomic_write's temporary files, never keys.
    return [(entry, folder / entry) for entry in entries if not entry.startswith(".") and (folder / entry).is_file()]


def _prefix_folders(base: Path) -> List[str]:
    """Every prefix under `prefix.d` that holds at least one file, found by walking the folder tree."""
    prefixes: List[str] = []
    seen: Set[Tuple[int, int]] = set()
    pending = [base]
    while pending:
        folder = pending.pop()
        try:
            status = folder.stat()
            entries = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TrustError(f"cannot list key folder {folder}: {exc.strerror}", path=str(folder)) from exc
        if (status.st_dev, status.st_ino) in seen:
            continue  # a symlink loop
        seen.add((status.st_dev, status.st_ino))
        relative = folder.relative_to(base).as_posix()
        visible = [entry for entry in entries if not entry.startswith(".")]
        if any((folder / entry).is_file() for entry in visible):
            if relative == "." or not _is_prefix(relative):
                raise TrustError(
                    f"key folder {folder} is not named by an image name prefix",
                    hint=f"key files belong in {base}/<prefix>/, e.g. {base}/example.com/app/<fingerprint>",
                    path=str(folder),
                )
            prefixes.append(relative)
        pending.extend(folder / entry for entry in visible if (folder / entry).is_dir())
    return prefixes


def _is_prefix(text: str) -> bool:
    try:
        check_ac_identifier(text, field="prefix")
    except ManifestError:
        return False
    return True


def _make_folders(folder: Path) -> None:
    """Create `folder` and its missing parents with mode 0755, whatever the umask."""
    missing: List[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            continue  # made by a concurrent process
        os.chmod(path, 0o755)
