"""OpenPGP armor, packet framing, signature issuers and gpg's key listing, without running gpg."""

from __future__ import annotations

import base64
import subprocess
from typing import Any, List

import pytest

from rocket.errors import TrustError
from rocket.openpgp import crc24, dearmor, inspect_key, is_armored, packet_tags, signature_issuers

# A detached ed25519 signature made by gpg 2.2.40 (key 54f65190c57935b6c226ce191cfcfcecacd671f4).
SIGNATURE_BODY = (
    "iHUEABYIAB0WIQRU9lGQxXk1tsImzhkc/PzsrNZx9AUCawra+gAKCRAc/PzsrNZx\n"
    "9MnCAP97H2CCZhC9U1c7s5V+HaIbrhM2qXaR6cI/bzZ0WLqhhgD/bJj1LyR+f4su\n"
    "373i+A9TZ4XUhqoG66Gf45nCsb+HUAM=\n"
)
SIGNATURE_CRC = "=2gj9\n"
SIGNER = "54f65190c57935b6c226ce191cfcfcecacd671f4"
SIGNATURE = base64.b64decode(SIGNATURE_BODY)


def armor(body: str, *, kind: str = "PGP SIGNATURE", headers: str = "", crc: str = SIGNATURE_CRC) -> bytes:
    return f"-----BEGIN {kind}-----\n{headers}\n{body}{crc}-----END {kind}-----\n".encode()


def armor_binary(binary: bytes, *, kind: str) -> bytes:
    crc = base64.b64encode(crc24(binary).to_bytes(3, "big")).decode()
    return armor(base64.b64encode(binary).decode() + "\n", kind=kind, crc=f"={crc}\n")


def test_crc24_check_value() -> None:
    # The CRC-24/OPENPGP catalogue check value.
    assert crc24(b"123456789") == 0x21CF02


@pytest.mark.parametrize(
    "data",
    [
        armor(SIGNATURE_BODY),
        armor(SIGNATURE_BODY, headers="Version: GnuPG v2\nComment: a comment\n"),
        armor(SIGNATURE_BODY).replace(b"\n", b"\r\n"),
        b"\n  " + armor(SIGNATURE_BODY) + b"\n\n",
        armor(SIGNATURE_BODY, crc=""),  # RFC 9580: the checksum is optional
        armor(SIGNATURE_BODY).replace(b"-----\n\n", b"-----\n", 1),  # no empty line after the header line
    ],
    ids=["plain", "headers", "crlf", "surrounding-blanks", "no-crc", "no-empty-line"],
)
def test_dearmor_valid(data: bytes) -> None:
    assert is_armored(data)
    assert dearmor(data) == SIGNATURE


def test_dearmor_public_key_block() -> None:
    key = b"\xc6\x05\x04abcd"  # a (fake) new-format public key packet
    assert dearmor(armor_binary(key, kind="PGP PUBLIC KEY BLOCK")) == key


def test_binary_passes_through() -> None:
    assert not is_armored(SIGNATURE)
    assert dearmor(SIGNATURE) == SIGNATURE


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(armor(SIGNATURE_BODY, crc="=2gj8\n"), id="bad-crc"),
        pytest.param(armor(SIGNATURE_BODY, crc="=2g\n"), id="short-crc"),
        pytest.param(armor(SIGNATURE_BODY.replace("iHUE", "iHU*")), id="bad-base64"),
        pytest.param(armor(SIGNATURE_BODY[:-5] + "\n"), id="truncated"),
        pytest.param(armor(SIGNATURE_BODY)[:-30], id="no-end-line"),
        pytest.param(armor(SIGNATURE_BODY) + b"trailing text\n", id="text-after-end"),
        pytest.param(armor(SIGNATURE_BODY).replace(b"END PGP SIGNATURE", b"END PGP MESSAGE"), id="end-mismatch"),
        pytest.param(armor(SIGNATURE_BODY, kind="PGP MESSAGE"), id="message-block"),
        pytest.param(armor(SIGNATURE_BODY, kind="PGP PRIVATE KEY BLOCK"), id="private-key-block"),
        pytest.param(armor(SIGNATURE_BODY, kind="PGP PUBLIC KEY BLOCK"), id="signature-labelled-as-key"),
        pytest.param(armor("", crc=""), id="empty-block"),
        pytest.param(armor(SIGNATURE_BODY).replace(b"iHUE", "iHÜE".encode()), id="non-ascii"),
        pytest.param(b"hello, world\n", id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x01\x02\x03", id="zero-bytes"),
        pytest.param(SIGNATURE[:-1], id="binary-cut-off"),
        pytest.param(b"\xc5\x01\x04", id="secret-key-packet"),
        pytest.param(b"\xcb\x02ab", id="literal-data-packet"),
        pytest.param(b"\xc2\xe1abc", id="partial-length"),
        pytest.param(b"\x8b", id="indeterminate-old-length"),
    ],
)
def test_dearmor_rejects(data: bytes) -> None:
    with pytest.raises(TrustError):
        dearmor(data)


@pytest.mark.parametrize(
    ("data", "tags"),
    [
        (b"\x88\x02ab", [2]),  # old format, 1-octet length
        (b"\x89\x00\x02ab", [2]),  # old format, 2-octet length
        (b"\x8a\x00\x00\x00\x02ab", [2]),  # old format, 4-octet length
        (b"\xc2\x02ab", [2]),  # new format, 1-octet length
        (b"\xc2\xc0\x00" + b"x" * 192, [2]),  # new format, 2-octet length
        (b"\xc2\xff\x00\x00\x00\x01x", [2]),  # new format, 5-octet length
        (b"\x99\x00\x01x\xb4\x01u\xb9\x00\x01s", [6, 13, 14]),  # key, user ID, subkey
    ],
)
def test_packet_tags(data: bytes, tags: List[int]) -> None:
    assert packet_tags(data) == tags


def test_signature_issuers() -> None:
    # The hashed area names the issuer fingerprint, the unhashed one the key ID.
    assert signature_issuers(SIGNATURE) == [SIGNER, SIGNER[-16:]]


def test_signature_issuers_v3() -> None:
    body = b"\x03\x05\x00" + b"\x00" * 4 + bytes.fromhex("0123456789abcdef") + b"\x01\x08" + b"\x00" * 4
    assert signature_issuers(bytes([0xC2, len(body)]) + body) == ["0123456789abcdef"]


# --- inspect_key over a replaced runner (the integration tests use real gpg) ----------------------

FAKE_KEY = b"\x99\x00\x01x\xb4\x01u"  # framing of a public key with a user ID; gpg's answer is canned


class FakeGpg:
    def __init__(self, stdout: str, returncode: int = 0) -> None:
        self.stdout = stdout
        self.returncode = returncode
        self.commands: List[List[str]] = []

    def __call__(self, command: List[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        self.commands.append(command)
        return subprocess.CompletedProcess(command, self.returncode, self.stdout.encode(), b"gpg: some problem\n")


LISTING = """\
pub:r:4096:1:AAAABBBBCCCCDDDD:1577836800:1609459200::-:::sc::::::23::0:
fpr:::::::::0123456789ABCDEF0123456789ABCDEF01234567:
uid:r::::1577836800::HASH::Name\\x3a With Colon <a@example.com>::::::::::0:
uid:r::::1577836800::HASH::Ünïcode <b@example.com>::::::::::0:
sub:r:255:22:1111222233334444:1577836800::::::s:::::ed25519::
fpr:::::::::89ABCDEF0123456789ABCDEF0123456789ABCDEF:
"""


def test_inspect_key_reads_the_colon_listing() -> None:
    gpg = FakeGpg(LISTING)
    info = inspect_key(FAKE_KEY, gpg="/usr/bin/gpg", runner=gpg)
    assert info.fingerprint == "0123456789abcdef0123456789abcdef01234567"
    assert info.subkey_fingerprints == ["89abcdef0123456789abcdef0123456789abcdef"]
    assert info.user_ids == ["Name: With Colon <a@example.com>", "Ünïcode <b@example.com>"]
    assert (info.created, info.expires, info.revoked, info.algorithm) == (1577836800.0, 1609459200.0, True, "rsa4096")
    command = gpg.commands[0]
    assert command[0] == "/usr/bin/gpg" and "--show-keys" in command and "--batch" in command
    assert command[command.index("--homedir") + 1].startswith("/")


@pytest.mark.parametrize(
    ("listing", "returncode"),
    [
        (LISTING + LISTING, 0),  # two primary keys
        ("", 0),  # gpg found nothing usable
        (LISTING.replace("pub:", "sec:"), 0),  # secret key material
        (LISTING, 2),  # gpg failed
    ],
    ids=["two-keys", "nothing", "secret", "gpg-failed"],
)
def test_inspect_key_rejects(listing: str, returncode: int) -> None:
    with pytest.raises(TrustError):
        inspect_key(FAKE_KEY, runner=FakeGpg(listing, returncode))


@pytest.mark.parametrize(
    "data",
    [SIGNATURE, b"\x99\x00\x01x\x99\x00\x01y", b"\x95\x00\x01x", b"not a key"],
    ids=["signature", "two-primaries", "secret-key", "garbage"],
)
def test_inspect_key_rejects_before_running_gpg(data: bytes) -> None:
    gpg = FakeGpg(LISTING)
    with pytest.raises(TrustError):
        inspect_key(data, runner=gpg)
    assert gpg.commands == []
