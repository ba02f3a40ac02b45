"""Signing images: an armored detached signature (`IMAGE.aci.asc`) made by gpg with a publisher's secret key.

The publisher's side of what verify.py checks. gpg runs in batch mode on the given GNUPGHOME, so the
key must be usable without a passphrase prompt (no passphrase, or one cached in gpg-agent). Whether an
existing signature still holds is decided with verify.verify_signature against the public half of the
same key, exported from that home, so "signed" means exactly what a host that trusts the key accepts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import List, Optional

from .errors import TrustError
from .fileio import atomic_write
from .keystore import StoredKey
from .openpgp import Runner, inspect_key, last_line, split_public_keys
from .verify import verify_signature

_GPG_TIMEOUT = 120
_INSTALL = "install gnupg (apt install gnupg)"
_HINT = "check `gpg --homedir HOME --list-secret-keys KEY`; batch signing needs a key without a passphrase prompt"


def _gpg(gpg_home: Optional[Path], gpg: str) -> List[str]:
    command = [gpg, "--batch", "--no-tty"]
    if gpg_home is not None:
        command += ["--homedir", os.fspath(gpg_home)]
    return command


def sign_detached(
    path: Path,
    output: Path,
    *,
    key: str,
    gpg_home: Optional[Path] = None,
    gpg: str = "gpg",
    runner: Runner = subprocess.run,
) -> None:
    """Write an armored detached signature of `path` by `key` to `output`, atomically; TrustError if gpg fails."""
    command = _gpg(gpg_home, gpg) + ["--armor", "--detach-sign", "--local-user", key, "--output", "-", os.fspath(path)]
    try:
        result = runner(command, capture_output=True, check=False, timeout=_GPG_TIMEOUT)
    except FileNotFoundError as exc:
        raise TrustError(f"cannot sign {path}: {gpg} not found", hint=_INSTALL) from exc
    except subprocess.TimeoutExpired as exc:
        raise TrustError(f"{gpg} did not sign {path} within {_GPG_TIMEOUT}s", hint=_HINT, key=key) from exc
    if result.returncode != 0 or not result.stdout:
        raise TrustError(
            f"gpg cannot sign {path} with key {key!r}: {last_line(result.stderr)}",
            hint=_HINT,
            key=key,
            path=os.fspath(path),
        )
    atomic_write(output, result.stdout, mode=0o644)


def public_keys(
    key: str, *, gpg_home: Optional[Path] = None, gpg: str = "gpg", runner: Runner = subprocess.run
) -> List[StoredKey]:
    """The public key(s) that `key` (fingerprint, key ID or user ID) selects in the home, as verify.py takes them."""
    command = _gpg(gpg_home, gpg) + ["--export", key]
    try:
        result = runner(command, capture_output=True, check=False, timeout=_GPG_TIMEOUT)
    except FileNotFoundError as exc:
        raise TrustError(f"cannot export key {key!r}: {gpg} not found", hint=_INSTALL) from exc
    if result.returncode != 0 or not result.stdout:
        raise TrustError(
            f"no public key {key!r} in {gpg_home or 'the default GNUPGHOME'}: {last_line(result.stderr)}",
            hint=_HINT,
            key=key,
        )
    keys = []
    for data in split_public_keys(result.stdout):
        info = inspect_key(data, gpg=gpg, runner=runner)
        keys.append(StoredKey.from_info(info, scope="", source="signer", path=Path(key), data=data))
    return keys


def signed_by(
    path: Path,
    signature: Path,
    keys: List[StoredKey],
    *,
    gpgv: str = "gpgv",
    runner: Runner = subprocess.run,
) -> bool:
    """True if `signature` is a good signature of `path` by one of `keys`; False if it is missing or does not hold."""
    try:
        data = signature.read_bytes()
    except FileNotFoundError:
        return False
    try:
        verify_signature(path, data, keys, gpgv=gpgv, runner=runner)
    except TrustError:
        return False
    return True
