"""Test helpers: real OpenPGP keys and signatures made with gpg in a throw-away GNUPGHOME.

Not a test file. A test module makes one `GpgHome` per session (RSA 4096 key generation takes seconds)
and asks it for keys: `make_keyring(home)` builds the whole set the trust tests need.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

# Times for keys and signatures made "in the past" with --faked-system-time.
PAST = "20200101T000000"
PAST_PLUS_HOUR = "20200101T010000"
PAST_PLUS_DAY = "20200102T000000"


@dataclass(frozen=True)
class TestKey:
    """A key in a GpgHome: its fingerprints and its exported public key, armored and binary."""

    __test__ = False  # not a pytest test class

    fingerprint: str
    signing_fingerprint: str
    armored: bytes
    binary: bytes


class GpgHome:
    """A private GNUPGHOME with helpers to make keys, sign files and revoke keys."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)

    def gpg(
        self, *args: str, faked_time: Optional[str] = None, input_data: Optional[bytes] = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run gpg in batch mode on this home, without passphrases; raise with stderr on failure."""
        command = ["gpg", "--batch", "--no-tty", "--homedir", str(self.path)]
        command += ["--pinentry-mode", "loopback", "--passphrase", ""]
        if faked_time:
            command += ["--faked-system-time", faked_time]
        result = subprocess.run(command + list(args), input=input_data, capture_output=True, check=False)
        if result.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result

    def fingerprints(self, user_id: str) -> List[str]:
        """Primary then subkey fingerprints (lower-case) of the key with `user_id`."""
        listing = self.gpg("--with-colons", "--with-subkey-fingerprint", "--list-keys", f"={user_id}").stdout
        return [line.split(":")[9].lower() for line in listing.decode().splitlines() if line.startswith("fpr:")]

    def generate(
        self,
        user_id: str,
        algo: str = "ed25519",
        usage: str = "sign",
        expire: str = "1y",
        *,
        faked_time: Optional[str] = None,
    ) -> str:
        """Make a primary key; returns its fingerprint."""
        self.gpg("--quick-gen-key", user_id, algo, usage, expire, faked_time=faked_time)
        return self.fingerprints(user_id)[0]

    def add_subkey(self, fingerprint: str, algo: str = "ed25519", usage: str = "sign", expire: str = "1y") -> str:
        """Add a subkey to a key; returns the subkey's fingerprint."""
        before = set(self._all_fingerprints())
        self.gpg("--quick-add-key", fingerprint.upper(), algo, usage, expire)
        (added,) = set(self._all_fingerprints()) - before
        return added

    def _all_fingerprints(self) -> List[str]:
        listing = self.gpg("--with-colons", "--with-subkey-fingerprint", "--list-keys").stdout.decode()
        return [line.split(":")[9].lower() for line in listing.splitlines() if line.startswith("fpr:")]

    def export(self, fingerprint: str, *, armor: bool = True) -> bytes:
        """The public key, armored or binary."""
        return self.gpg(*(["--armor"] if armor else []), "--export", fingerprint.upper()).stdout

    def key(self, fingerprint: str, signing_fingerprint: str = "") -> TestKey:
        """A TestKey for a key in this home."""
        return TestKey(
            fingerprint=fingerprint,
            signing_fingerprint=signing_fingerprint or fingerprint,
            armored=self.export(fingerprint, armor=True),
            binary=self.export(fingerprint, armor=False),
        )

    def sign(
        self,
        signer: str,
        path: Path,
        *,
        armor: bool = True,
        digest: Optional[str] = None,
        faked_time: Optional[str] = None,
        sig_expire: Optional[str] = None,
    ) -> bytes:
        """A detached signature of `path` by key `signer` (a fingerprint; a subkey's with a trailing `!`)."""
        args = ["--local-user", signer.upper(), "--detach-sign", "--output", "-"]
        if armor:
            args.insert(0, "--armor")
        if digest:
            args[:0] = ["--digest-algo", digest]
        if sig_expire:
            args[:0] = ["--default-sig-expire", sig_expire]
        return self.gpg(*args, str(path), faked_time=faked_time).stdout

    def revoke(self, fingerprint: str) -> None:
        """Revoke a key with the revocation certificate gpg made when it generated the key."""
        certificate = self.path / "openpgp-revocs.d" / f"{fingerprint.upper()}.rev"
        # gpg writes ":-----BEGIN" so that the certificate is not imported by accident.
        text = certificate.read_text().replace(":-----BEGIN", "-----BEGIN")
        self.gpg("--import", input_data=text.encode())

    def close(self) -> None:
        """Stop the gpg-agent this home started."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.path), "--kill", "gpg-agent"], capture_output=True, check=False
        )


@dataclass(frozen=True)
class Keyring:
    """The keys the trust tests use, made once per session, and signatures of `data` that need history."""

    home: GpgHome
    data: Path  # a file signed by the keys below
    rsa: TestKey  # RSA 4096, signs itself (also used for the SHA-1 signature)
    ed: TestKey  # ed25519
    other: TestKey  # ed25519, for "signed by a key nobody trusts"
    subkey: TestKey  # the primary only certifies; a signing subkey signs
    expired: TestKey  # made in the past, expired a day later
    revoked: TestKey  # exported after its revocation
    old: TestKey  # made in the past without expiry
    expired_key_sig: bytes  # of `data` by `expired`, made while it was valid
    revoked_key_sig: bytes  # of `data` by `revoked`, made before it was revoked
    expired_sig: bytes  # of `data` by `old`, made in the past, valid for one day
    sha1_sig: bytes  # of `data` by `rsa` with the SHA-1 digest


def make_keyring(home: GpgHome, data: Path) -> Keyring:
    """Generate every key of a Keyring in `home` and sign `data` (a few seconds, most of it RSA 4096)."""
    rsa = home.generate("RSA Signer <rsa@example.com>", "rsa4096", "sign", "1y")
    ed = home.generate("Ed Signer <ed@example.com>")
    other = home.generate("Other Signer <other@example.com>")
    primary = home.generate("Subkey Signer <subkey@example.com>", "ed25519", "cert", "never")
    signing = home.add_subkey(primary, "ed25519", "sign", "1y")
    expired = home.generate("Expired Signer <expired@example.com>", "ed25519", "sign", "1d", faked_time=PAST)
    revoked = home.generate("Revoked Signer <revoked@example.com>")
    old = home.generate("Old Signer <old@example.com>", "ed25519", "sign", "never", faked_time=PAST)
    revoked_key_sig = home.sign(revoked, data)
    home.revoke(revoked)
    return Keyring(
        home=home,
        data=data,
        rsa=home.key(rsa),
        ed=home.key(ed),
        other=home.key(other),
        subkey=home.key(primary, signing),
        expired=home.key(expired),
        revoked=home.key(revoked),
        old=home.key(old),
        # An expired key's signature made while it was valid: gpgv says EXPKEYSIG and exits 0.
        expired_key_sig=home.sign(expired, data, faked_time=PAST_PLUS_HOUR),
        revoked_key_sig=revoked_key_sig,
        expired_sig=home.sign(old, data, faked_time=PAST_PLUS_DAY, sig_expire="1d"),
        # SHA-1 with RSA: the legacy signatures that still exist in the wild.
        sha1_sig=home.sign(rsa, data, digest="SHA1"),
    )
