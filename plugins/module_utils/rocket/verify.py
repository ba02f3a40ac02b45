"""Signature checks with gpgv, and the trust decision that combines keystore, policy and operator flags.

gpgv runs with an empty throw-away homedir, one keyring file of exactly the candidate keys (absolute
path), `--weak-digest SHA1` and `--status-fd 1`. Its exit code alone is not enough: it exits 0 for a
signature by an expired or revoked key. A signature is good only with exit 0, one GOODSIG, one VALIDSIG,
and none of BADSIG, ERRSIG, EXPSIG, EXPKEYSIG, REVKEYSIG, NO_PUBKEY.

Every refusal is a TrustError whose `reason` context field is one of: unsigned, unknown-key,
bad-signature, expired-signature, expired-key, revoked-key, weak-digest, error; check_trust adds
denied-key (the deny-list) and policy-reject (a `reject` scope).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .errors import TrustError
from .fileio import atomic_write
from .keystore import Keystore, StoredKey
from .openpgp import TAG_SIGNATURE, Runner, dearmor, last_line, packet_tags, parse_time, signature_issuers
from .policy import INSECURE_ACCEPT_ANYTHING, REJECT, Policy

_GPGV_TIMEOUT = 120
_STATUS_PREFIX = "[GNUPG:] "
# OpenPGP hash algorithm numbers (RFC 4880 section 9.4); MD5 and SHA-1 are refused.
_DIGESTS = {"1": "MD5", "2": "SHA1", "3": "RIPEMD160", "8": "SHA256", "9": "SHA384", "10": "SHA512", "11": "SHA224"}
_WEAK_DIGESTS = frozenset({"1", "2"})
_GPG_ERR_NO_PUBKEY = "9"
_GPG_ERR_DIGEST_ALGO = "5"

# Status keywords that refuse a signature whatever else gpgv says, most specific first.
_REFUSALS = (
    ("REVKEYSIG", "revoked-key", "the key {key} that signed {path} has been revoked"),
    ("EXPKEYSIG", "expired-key", "the key {key} that signed {path} has expired"),
    ("EXPSIG", "expired-signature", "the signature of {path} by key {key} has expired"),
    ("BADSIG", "bad-signature", "the signature of {path} by key {key} does not match the file"),
)

_HINTS = {
    "unsigned": "fetch the image with its signature (<image>.aci.asc), or use --insecure-options=image",
    "unknown-key": "if you trust the signer, trust its key with `rocket trust --prefix PREFIX KEY-FILE`",
    "bad-signature": "the file was altered, or the signature belongs to another file: fetch both again",
    "expired-signature": "ask the publisher to sign the image again",
    "expired-key": "get the key's renewed version (a later expiry date) and trust it again with `rocket trust`",
    "revoked-key": "do not use this image; ask the publisher for one signed with a valid key",
    "weak-digest": "ask the publisher to sign with SHA-256 or stronger",
    "error": "run `gpgv --status-fd 1 SIGNATURE FILE` by hand to see why",
    "denied-key": "the trust policy withdrew this key: ask the publisher for an image signed with a current key",
    "policy-reject": "change the trust policy if images of this name should be allowed",
}


@dataclass(frozen=True)
class Signature:
    """A good signature: which key made it (primary and signing (sub)key), when, with which digest."""

    primary_fingerprint: str
    signing_fingerprint: str
    key: StoredKey
    timestamp: float
    digest_algo: str


@dataclass(frozen=True)
class TrustDecision:
    """Why an image may be used: `how` is 'signature', 'insecure-policy' or 'insecure-flag'."""

    accepted: bool
    how: str
    fingerprint: Optional[str]
    scope: str
    reason: str
    signature: Optional[Signature] = None


# --- gpgv ------------------------------------------------------------------------------------------


def verify_signature(
    data_path: Path,
    signature: bytes,
    keys: Sequence[StoredKey],
    *,
    gpgv: str = "gpgv",
    runner: Runner = subprocess.run,
) -> Signature:
    """Check a detached signature (armored or binary) of `data_path` against exactly `keys`; else TrustError."""
    path = os.path.abspath(data_path)
    sig_binary = _signature_packet(signature, path)
    with tempfile.TemporaryDirectory(prefix="rocket-gpgv-") as work:  # mkdtemp: mode 0700
        home = os.path.join(work, "home")  # stays empty: gpgv reads no configuration and no default keyring
        os.mkdir(home, 0o700)
        keyring = os.path.join(work, "keyring.gpg")
        sig_file = os.path.join(work, "signature.sig")
        atomic_write(keyring, b"".join(dearmor(key.data or key.path.read_bytes()) for key in keys), mode=0o600)
        atomic_write(sig_file, sig_binary, mode=0o600)
        command = [gpgv, "--homedir", home, "--keyring", keyring, "--status-fd", "1", "--weak-digest", "SHA1"]
        try:
            result = runner(command + [sig_file, path], capture_output=True, check=False, timeout=_GPGV_TIMEOUT)
        except FileNotFoundError as exc:
            message = f"cannot check the signature of {path}: {gpgv} not found"
            raise _refuse("error", message, path, hint="install gpgv (apt install gpgv)") from exc
        except subprocess.TimeoutExpired as exc:
            raise _refuse("error", f"{gpgv} did not finish checking {path} in {_GPGV_TIMEOUT}s", path) from exc
    status = _parse_status(result.stdout.decode("utf-8", "replace"))
    _judge(status, result.returncode, path, keys, last_line(result.stderr))
    valid = status["VALIDSIG"][0]
    primary = (valid[9] if len(valid) > 9 else valid[0]).lower()
    by_fingerprint = {key.fingerprint: key for key in keys}
    if primary not in by_fingerprint:
        raise _refuse("error", f"gpgv names a key {primary} for {path} that was not given to it", path, primary)
    digest = _DIGESTS.get(valid[7], f"algo{valid[7]}")
    if valid[7] in _WEAK_DIGESTS:  # gpgv refuses these itself; this is a second lock on the same door
        raise _refuse("weak-digest", f"the signature of {path} uses the weak digest {digest}", path, primary)
    return Signature(
        primary_fingerprint=primary,
        signing_fingerprint=valid[0].lower(),
        key=by_fingerprint[primary],
        timestamp=parse_time(valid[2]),
        digest_algo=digest,
    )


def _signature_packet(signature: bytes, path: str) -> bytes:
    """The signature as exactly one binary signature packet (a signed message is not a detached signature)."""
    if not signature.strip():
        raise _refuse("unsigned", f"{path} has an empty signature", path)
    try:
        binary = dearmor(signature)
        tags = packet_tags(binary)
    except TrustError as exc:
        raise _refuse("bad-signature", f"the signature of {path} is not OpenPGP: {exc.message}", path) from exc
    if tags != [TAG_SIGNATURE]:
        message = f"the signature of {path} is not one detached signature (packet types {tags})"
        raise _refuse("bad-signature", message, path, hint="sign with gpg --detach-sign, once")
    return binary


def _parse_status(text: str) -> Dict[str, List[List[str]]]:
    """gpgv's status lines as keyword -> list of argument lists, in order."""
    status: Dict[str, List[List[str]]] = {}
    for line in text.splitlines():
        if line.startswith(_STATUS_PREFIX):
            keyword, *args = line[len(_STATUS_PREFIX) :].split(" ")
            status.setdefault(keyword, []).append(args)
    return status


def _judge(
    status: Dict[str, List[List[str]]], returncode: int, path: str, keys: Sequence[StoredKey], stderr_line: str
) -> None:
    """Raise TrustError unless the status lines and exit code say: one good, valid signature."""
    key = _signer(status, keys)
    seen = sorted(status)
    for keyword, reason, text in _REFUSALS:
        if keyword in status:
            raise _refuse(reason, text.format(key=key, path=path), path, key, status=seen)
    errsig = status.get("ERRSIG", [[]])[0] + [""] * 7
    if "NO_PUBKEY" in status or errsig[5] == _GPG_ERR_NO_PUBKEY:
        raise _refuse(
            "unknown-key", f"{path} is signed by key {key}, which is not trusted for it", path, key, status=seen
        )
    if "ERRSIG" in status and (errsig[2] in _WEAK_DIGESTS or errsig[5] == _GPG_ERR_DIGEST_ALGO):
        digest = _DIGESTS.get(errsig[2], f"algo{errsig[2]}")
        message = f"the signature of {path} by key {key} uses the weak digest {digest}"
        raise _refuse("weak-digest", message, path, key, status=seen)
    if "NODATA" in status:
        raise _refuse("bad-signature", f"the signature of {path} holds no OpenPGP signature", path, key, status=seen)
    counts = [len(status.get(keyword, [])) for keyword in ("NEWSIG", "GOODSIG", "VALIDSIG")]
    if "ERRSIG" in status or returncode != 0 or counts != [1, 1, 1] or len(status["VALIDSIG"][0]) < 8:
        text = f"gpgv could not verify the signature of {path}: {stderr_line}"
        raise _refuse("error", text, path, key, status=seen, returncode=returncode)


def _signer(status: Dict[str, List[List[str]]], keys: Sequence[StoredKey]) -> str:
    """The signing key as gpgv names it, as a primary fingerprint when it is one of `keys`."""
    name = ""
    if "VALIDSIG" in status:
        valid = status["VALIDSIG"][0] + [""] * 10
        name = valid[9] or valid[0]
    elif "ERRSIG" in status:
        errsig = status["ERRSIG"][0] + [""] * 7
        name = errsig[6] or errsig[0]
    else:
        for keyword in ("REVKEYSIG", "EXPKEYSIG", "EXPSIG", "BADSIG", "GOODSIG", "NO_PUBKEY"):
            if status.get(keyword) and status[keyword][0]:
                name = status[keyword][0][0]
                break
    name = name.lower()
    for key in keys:  # BADSIG and friends give a key ID only: name the trusted key it belongs to
        if name and any(
            fpr.endswith(name) or fpr.startswith(name) for fpr in [key.fingerprint, *key.subkey_fingerprints]
        ):
            return key.fingerprint
    return name or "(unknown)"


def _refuse(
    reason: str, message: str, path: str, fingerprint: str = "", *, hint: str = "", **context: object
) -> TrustError:
    """A TrustError with its `reason`, the file and the key; the hint defaults to the one for the reason."""
    return TrustError(
        message, hint=hint or _HINTS[reason], reason=reason, path=path, fingerprint=fingerprint, **context
    )


# --- the decision ----------------------------------------------------------------------------------


def check_trust(
    name: str,
    data_path: Path,
    signature: Optional[bytes],
    *,
    keystore: Keystore,
    policy: Policy,
    insecure_image: bool = False,
    gpgv: str = "gpgv",
    runner: Runner = subprocess.run,
) -> TrustDecision:
    """Decide whether image `name` in `data_path` may be used: deny-list, scope requirement, flag, signature."""
    path = os.path.abspath(data_path)
    scope, requirement = policy.requirement_for(name)
    signed = signature is not None and bool(signature.strip())
    if signed and policy.deny:
        _refuse_denied_issuer(name, path, signature or b"", keystore=keystore, policy=policy)
    if requirement.type == REJECT:
        where = f"scope {scope}" if scope else "its default"
        hint = f"change {policy.source or 'the trust policy'} if images named {name} should be allowed"
        raise _refuse("policy-reject", f"the trust policy ({where}) rejects image {name}", path, hint=hint, scope=scope)
    if insecure_image:
        return TrustDecision(True, "insecure-flag", None, scope, "verification skipped: --insecure-options=image")
    if requirement.type == INSECURE_ACCEPT_ANYTHING:
        accepted = f"the trust policy accepts any image under {scope or 'any name'}"
        return TrustDecision(True, "insecure-policy", None, scope, accepted)
    if not signed:
        raise _refuse("unsigned", f"image {name} ({path}) has no signature", path, scope=scope)
    hint = f"if you trust the publisher, trust its key with `rocket trust --prefix {name} KEY-FILE`"
    candidates = keystore.keys_for(name)
    if requirement.keys is not None:
        candidates = [key for key in candidates if key.fingerprint in requirement.keys]
        hint += f" and list it under {scope or 'default'} in {policy.source}"
    if not candidates:
        raise _refuse("unknown-key", f"no trusted key for image {name}", path, hint=hint, scope=scope)
    try:
        good = verify_signature(Path(path), signature or b"", candidates, gpgv=gpgv, runner=runner)
    except TrustError as exc:
        if exc.context.get("reason") != "unknown-key":
            raise
        raise TrustError(exc.message, hint=hint, **exc.context) from exc
    if policy.denied(good.primary_fingerprint, good.signing_fingerprint, *good.key.subkey_fingerprints):
        message = f"image {name} is signed by key {good.primary_fingerprint}, which the trust policy denies"
        raise _refuse("denied-key", message, path, good.primary_fingerprint, scope=scope)
    accepted = f"signed by trusted key {good.primary_fingerprint}"
    return TrustDecision(True, "signature", good.primary_fingerprint, scope, accepted, good)


def _refuse_denied_issuer(name: str, path: str, signature: bytes, *, keystore: Keystore, policy: Policy) -> None:
    """Refuse a signature whose issuer (or the trusted key the issuer belongs to) is on the deny-list."""
    try:
        issuers = signature_issuers(dearmor(signature))
    except TrustError:
        return  # not a signature at all, so no key to deny; signedBy refuses it when it checks it
    related = list(issuers)
    for key in keystore.keys_for(name):  # a subkey's signature names the subkey: find its primary
        own = [key.fingerprint, *key.subkey_fingerprints]
        if any(fpr.endswith(issuer) or fpr.startswith(issuer) for issuer in issuers for fpr in own):
            related.extend(own)
    if policy.denied(*related):
        fingerprint = issuers[0] if issuers else ""
        message = f"image {name} is signed by key {fingerprint}, which the trust policy denies"
        raise _refuse("denied-key", message, path, fingerprint)
