"""OpenPGP data as rocket sees it: ASCII armor, the packet framing, and what gpg says about a key.

rocket never does OpenPGP cryptography itself: gpg describes keys and gpgv checks signatures (see
verify.py). This module only undoes the armor (RFC 4880 section 6, CRC24 checked when present; RFC 9580
made it optional), walks the packet headers so that garbage, secret keys and signed messages posing as
detached signatures are refused before any program sees them, and reads the issuer of a signature.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, List, Optional, Tuple

from .errors import TrustError

Runner = Callable[..., Any]

# Packet tags (RFC 4880 section 4.3) that rocket looks at.
TAG_SIGNATURE = 2
TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
TAG_SECRET_SUBKEY = 7
TAG_PUBLIC_SUBKEY = 14

# Armor block types rocket accepts, and the tag the first packet of each must have.
_ARMOR_FIRST_TAG = {"PGP PUBLIC KEY BLOCK": TAG_PUBLIC_KEY, "PGP SIGNATURE": TAG_SIGNATURE}
_BEGIN_RE = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ,/]+)-----")
_HEADER_RE = re.compile(r"[A-Za-z0-9-]+: ?.*")
_CRC_RE = re.compile(r"=[A-Za-z0-9+/]{4}")

_CRC24_INIT = 0xB704CE
_CRC24_POLY = 0x1864CFB

_GPG_TIMEOUT = 60

# gpg's public key algorithm numbers (RFC 4880 section 9.1, RFC 9580 section 9.1).
_RSA_ALGOS = frozenset({"1", "2", "3"})
_ALGO_NAMES = {"16": "elg", "17": "dsa", "20": "elg", "27": "ed25519", "28": "ed448"}


def _crc24_table() -> List[int]:
    table = []
    for index in range(256):
        crc = index << 16
        for _bit in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
        table.append(crc & 0xFFFFFF)
    return table


_CRC24_TABLE = _crc24_table()


def crc24(data: bytes) -> int:
    """The OpenPGP armor checksum (RFC 4880 section 6.1) of `data`."""
    crc = _CRC24_INIT
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24_TABLE[((crc >> 16) ^ byte) & 0xFF]
    return crc


def is_armored(data: bytes) -> bool:
    """True if `data` (after leading white space) starts with an OpenPGP armor header line."""
    return data.lstrip().startswith(b"-----BEGIN PGP ")


def dearmor(data: bytes) -> bytes:
    """Armored public key or signature -> binary packets (CRC24 checked); binary passes through; else TrustError."""
    if is_armored(data):
        binary, kind = _decode_armor(data)
        tags = packet_tags(binary)
        if tags[0] != _ARMOR_FIRST_TAG[kind]:
            raise TrustError(
                f"armored {kind} does not start with the packet it announces (found packet type {tags[0]})",
                hint="the file is damaged or mislabelled; export it again",
            )
        return binary
    tags = packet_tags(data)
    if tags[0] not in (TAG_PUBLIC_KEY, TAG_SIGNATURE):
        raise TrustError(
            f"OpenPGP data starts with packet type {tags[0]}, not a public key or a signature",
            hint="give a public key (gpg --export) or a detached signature (gpg --detach-sign)",
            tag=tags[0],
        )
    return data


def _decode_armor(data: bytes) -> Tuple[bytes, str]:
    """Return (binary, block type) of the one armored block in `data`."""
    hint = "give one armored public key or detached signature, e.g. from gpg --armor --export"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise TrustError("armored OpenPGP data holds non-ASCII bytes", hint=hint) from exc
    lines = [line.rstrip(" \t\r") for line in text.strip().split("\n")]
    begin = _BEGIN_RE.fullmatch(lines[0])
    if begin is None:
        raise TrustError(f"bad armor header line {lines[0][:60]!r}", hint=hint)
    kind = begin.group("kind")
    if kind not in _ARMOR_FIRST_TAG:
        raise TrustError(f"armored block is a {kind}, not a public key or a signature", hint=hint, kind=kind)
    end_line = f"-----END {kind}-----"
    if lines[-1] != end_line:
        raise TrustError(f"armored {kind} does not end with {end_line!r} (or has text after it)", hint=hint)
    body = lines[1:-1]
    # Armor headers ("Version: ...") run up to an empty line. Some tools write no headers and no
    # empty line; a first line that is not a header is then the start of the data.
    if body and _HEADER_RE.fullmatch(body[0]) and "" in body:
        body = body[body.index("") + 1 :]
    elif body and body[0] == "":
        body = body[1:]
    checksum: Optional[str] = None
    if body and body[-1].startswith("="):
        checksum = body.pop()
        if not _CRC_RE.fullmatch(checksum):
            raise TrustError(f"bad armor checksum line {checksum!r} in the {kind}", hint=hint)
    try:
        binary = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TrustError(f"the {kind} is not valid base64: {exc}", hint=hint) from exc
    if not binary:
        raise TrustError(f"the armored {kind} is empty", hint=hint)
    if checksum is not None:
        expected = int.from_bytes(base64.b64decode(checksum[1:]), "big")
        if crc24(binary) != expected:
            raise TrustError(
                f"armor checksum mismatch in the {kind}: the data was damaged on the way",
                hint="download or export it again",
                kind=kind,
            )
    return binary, kind


def _packet_spans(data: bytes) -> List[Tuple[int, int, int]]:
    """Split binary OpenPGP data into (tag, body start, body end) triples; malformed framing -> TrustError."""
    spans = []
    offset = 0
    hint = "the OpenPGP data is damaged or is not OpenPGP at all; export it again"
    if not data:
        raise TrustError("empty OpenPGP data", hint=hint)
    while offset < len(data):
        first = data[offset]
        if not first & 0x80:
            raise TrustError(f"not OpenPGP data (byte {first:#04x} at offset {offset} starts no packet)", hint=hint)
        if first & 0x40:  # new format: 6-bit tag, then a length of 1, 2 or 5 octets
            tag = first & 0x3F
            pos = offset + 1
            if pos >= len(data):
                raise TrustError(f"OpenPGP packet header cut off at offset {offset}", hint=hint)
            octet = data[pos]
            if octet < 192:
                length, pos = octet, pos + 1
            elif octet < 224:
                if pos + 2 > len(data):
                    raise TrustError(f"OpenPGP packet header cut off at offset {offset}", hint=hint)
                length, pos = ((octet - 192) << 8) + data[pos + 1] + 192, pos + 2
            elif octet == 255:
                if pos + 5 > len(data):
                    raise TrustError(f"OpenPGP packet header cut off at offset {offset}", hint=hint)
                length, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
            else:
                # Partial body lengths only occur in streamed messages, never in keys or signatures.
                raise TrustError(f"OpenPGP packet at offset {offset} uses partial lengths", hint=hint)
        else:  # old format: 4-bit tag, length type in the low 2 bits
            tag = (first >> 2) & 0x0F
            size = {0: 1, 1: 2, 2: 4}.get(first & 0x03)
            if size is None:
                raise TrustError(f"OpenPGP packet at offset {offset} has an indeterminate length", hint=hint)
            pos = offset + 1
            if pos + size > len(data):
                raise TrustError(f"OpenPGP packet header cut off at offset {offset}", hint=hint)
            length, pos = int.from_bytes(data[pos : pos + size], "big"), pos + size
        if tag == 0 or pos + length > len(data):
            raise TrustError(f"OpenPGP packet at offset {offset} is invalid or cut off", hint=hint)
        spans.append((tag, pos, pos + length))
        offset = pos + length
    return spans


def packet_tags(data: bytes) -> List[int]:
    """The packet tags of binary OpenPGP data, in order; TrustError if the framing is not OpenPGP."""
    return [tag for tag, _start, _end in _packet_spans(data)]


def signature_issuers(data: bytes) -> List[str]:
    """Lower-case hex issuer fingerprints and key IDs named by the signature packets in binary `data`."""
    issuers: List[str] = []
    for tag, start, end in _packet_spans(data):
        if tag != TAG_SIGNATURE:
            continue
        body = data[start:end]
        if body[:1] == b"\x03" and len(body) >= 15:  # v3: the key ID sits at a fixed place
            issuers.append(body[7:15].hex())
        elif body[:1] in (b"\x04", b"\x05", b"\x06"):
            issuers.extend(_issuers_from_subpackets(body))
    return issuers


def _issuers_from_subpackets(body: bytes) -> List[str]:
    """Issuer (type 16) and issuer fingerprint (type 33) subpackets of a v4/v5/v6 signature body."""
    found: List[str] = []
    width = 4 if body[0] == 6 else 2  # v6 counts subpacket areas in 4 octets
    pos = 4
    for _area in ("hashed", "unhashed"):
        if pos + width > len(body):
            return found
        area_len = int.from_bytes(body[pos : pos + width], "big")
        pos += width
        area = body[pos : pos + area_len]
        pos += area_len
        index = 0
        while index < len(area):
            octet = area[index]
            if octet < 192:
                length, index = octet, index + 1
            elif octet < 255:
                if index + 1 >= len(area):
                    break
                length, index = ((octet - 192) << 8) + area[index + 1] + 192, index + 2
            else:
                length, index = int.from_bytes(area[index + 1 : index + 5], "big"), index + 5
            if length == 0 or index + length > len(area):
                break
            kind, value = area[index] & 0x7F, area[index + 1 : index + length]
            if kind == 16 and len(value) == 8:
                found.append(value.hex())
            elif kind == 33 and len(value) in (21, 33):
                found.append(value[1:].hex())
            index += length
    return found


@dataclass(frozen=True)
class KeyInfo:
    """What gpg says about one public key: its primary fingerprint, user IDs, subkeys, dates, state."""

    fingerprint: str
    user_ids: List[str] = field(default_factory=list)
    subkey_fingerprints: List[str] = field(default_factory=list)
    created: float = 0.0
    expires: Optional[float] = None
    revoked: bool = False
    algorithm: str = ""


def inspect_key(data: bytes, *, gpg: str = "gpg", runner: Runner = subprocess.run) -> KeyInfo:
    """Describe the one public key in `data` (armored or binary) with gpg in a throw-away homedir."""
    binary = dearmor(data)
    tags = packet_tags(binary)
    hint = "a key file holds exactly one public key with its subkeys, as written by gpg --export KEY"
    if tags[0] != TAG_PUBLIC_KEY or TAG_SECRET_KEY in tags or TAG_SECRET_SUBKEY in tags:
        raise TrustError("the data is not a public key (or holds secret key material)", hint=hint)
    primaries = tags.count(TAG_PUBLIC_KEY)
    if primaries != 1:
        raise TrustError(f"the data holds {primaries} primary keys, not one", hint=hint, count=primaries)
    with tempfile.TemporaryDirectory(prefix="rocket-gpg-") as home:
        os.chmod(home, 0o700)
        command = [gpg, "--batch", "--no-tty", "--no-autostart", "--homedir", home, "--with-colons"]
        command += ["--with-fingerprint", "--with-subkey-fingerprint", "--show-keys"]
        try:
            result = runner(command, input=binary, capture_output=True, check=False, timeout=_GPG_TIMEOUT)
        except FileNotFoundError as exc:
            raise TrustError(f"cannot run {gpg}: not found", hint="install gnupg (apt install gnupg)") from exc
        except subprocess.TimeoutExpired as exc:
            raise TrustError(f"{gpg} did not describe the key within {_GPG_TIMEOUT}s", hint="retry") from exc
    if result.returncode != 0:
        raise TrustError(f"gpg rejects the key: {last_line(result.stderr)}", hint=hint, returncode=result.returncode)
    return _parse_colons(result.stdout.decode("utf-8", "replace"), hint=hint)


def _parse_colons(listing: str, *, hint: str) -> KeyInfo:
    """Read gpg's --with-colons listing of exactly one public key."""
    primaries: List[List[str]] = []
    fingerprint = ""
    user_ids: List[str] = []
    subkeys: List[str] = []
    last = ""
    for line in listing.splitlines():
        record = line.split(":")
        kind = record[0]
        if kind in ("sec", "ssb"):
            raise TrustError("the data holds secret key material", hint=hint)
        if kind == "pub":
            primaries.append(record)
        elif kind == "uid" and len(record) > 9:
            user_ids.append(_unescape(record[9]))
        elif kind == "fpr" and len(record) > 9:
            if last == "pub":
                fingerprint = record[9].lower()
            elif last == "sub":
                subkeys.append(record[9].lower())
        if kind in ("pub", "sub", "uid"):
            last = kind
    if len(primaries) != 1 or not fingerprint:
        raise TrustError(
            f"gpg found {len(primaries)} usable primary keys in the data, not one (no valid self-signature?)",
            hint=hint,
            count=len(primaries),
        )
    pub = primaries[0] + [""] * 20
    expires = parse_time(pub[6]) if pub[6] else None
    return KeyInfo(
        fingerprint=fingerprint,
        user_ids=user_ids,
        subkey_fingerprints=subkeys,
        created=parse_time(pub[5]) if pub[5] else 0.0,
        expires=expires,
        revoked=pub[1] == "r",
        algorithm=_algorithm(pub[3], pub[2], pub[16]),
    )


def _algorithm(number: str, bits: str, curve: str) -> str:
    """A short algorithm name like gpg prints it: rsa4096, ed25519, dsa2048."""
    if number in _RSA_ALGOS:
        return f"rsa{bits}"
    if curve:
        return curve.lower()
    if number in _ALGO_NAMES:
        return _ALGO_NAMES[number] + (bits if number in ("16", "17", "20") else "")
    return f"algo{number}"


def _unescape(text: str) -> str:
    """Undo gpg's C-style \\xHH escapes of colon listings (user IDs are UTF-8)."""
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    return raw.decode("utf-8", "replace")


def parse_time(text: str) -> float:
    """Seconds since the epoch from a gpg time field (epoch seconds, or ISO 8601 `yyyymmddThhmmss`)."""
    if "T" in text:
        return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc).timestamp()
    return float(text)


def last_line(stderr: bytes) -> str:
    """The last non-empty line a gpg program wrote to stderr: its own summary of what went wrong."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def split_public_keys(data: bytes) -> List[bytes]:
    """Split a keyring (armored or binary) into one binary transferable public key per primary key."""
    binary = dearmor(data)
    keys: List[bytes] = []
    start: Optional[int] = None
    header_start = 0
    for tag, _body_start, body_end in _packet_spans(binary):
        if tag == TAG_PUBLIC_KEY:
            if start is not None:
                keys.append(binary[start:header_start])
            start = header_start
        header_start = body_end
    if start is not None:
        keys.append(binary[start:])
    if not keys:
        raise TrustError("the OpenPGP data holds no public key", hint="export the key with gpg --export")
    return keys
