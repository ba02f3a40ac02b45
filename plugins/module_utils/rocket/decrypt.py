"""Encrypted ACIs: OpenPGP-encrypted archives are decrypted with gpg on the way into the importer.

The specification allows an ACI to be encrypted with OpenPGP after compression; the image ID is the hash
of the decrypted, uncompressed tar, and the signature covers the file as distributed (encrypted). The
secrets come from the local config:

    <local-config>/decryption/passphrase      symmetric encryption (the whole file is the passphrase)
    <local-config>/decryption/secret-keys.gpg  public-key encryption (secret keys, armored or binary)

gpg writes the plaintext to a pipe that the importer reads, so nothing decrypted touches the disk
outside the store's work folder. gpg only reports a failed integrity check when it reaches the end,
so the caller must call `finish()` before the image is made visible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Optional, Type

from .compression import BZIP2_MAGIC, GZIP_MAGIC, XZ_MAGIC
from .errors import ImageError
from .paths import decryption_dir


def is_encrypted(path: Path) -> bool:
    """An OpenPGP message (a packet tag byte, top bit set) rather than a tar or a compressed tar."""
    with open(path, "rb") as stream:
        head = stream.read(8)
    if not head or head.startswith((GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC)):
        return False
    return bool(head[0] & 0x80)


class DecryptedStream:
    """gpg's plaintext output as a readable stream; `finish()` checks gpg's verdict."""

    def __init__(self, process: subprocess.Popen[bytes], home: str, source: Path, *, partial: bool) -> None:
        self.process = process
        self.home = home
        self.source = source
        self.partial = partial
        if process.stdout is None:
            raise AssertionError("bug: gpg started without a stdout pipe")
        self.stdout: IO[bytes] = process.stdout

    def readinto(self, buffer: memoryview) -> int:
        return self.stdout.readinto(buffer)  # type: ignore[attr-defined, no-any-return]

    def read(self, size: int = -1) -> bytes:
        return self.stdout.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass  # the context manager owns the process; import_archive's `with raw:` must not end it early

    @property
    def closed(self) -> bool:
        return False

    def finish(self) -> None:
        """Wait for gpg; raise ImageError unless it decrypted the whole message with its integrity intact."""
        self.stdout.read()
        code = self.process.wait()
        error = self.process.stderr.read().decode("utf-8", "replace") if self.process.stderr else ""
        if code != 0:
            last = error.strip().splitlines()[-1] if error.strip() else f"exit status {code}"
            raise ImageError(
                f"cannot decrypt {self.source}: {last}",
                rule="decrypt",
                hint="check the passphrase or secret keys in the local config's decryption/ folder",
            )

    def __enter__(self) -> DecryptedStream:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        shutil.rmtree(self.home, ignore_errors=True)


class Decryptor:
    """Starts gpg with the decryption secrets of one local config."""

    def __init__(self, local_config: Path, *, gpg: str = "gpg") -> None:
        self.folder = decryption_dir(local_config)
        self.gpg = gpg

    def open(self, source: Path, *, partial: bool = False) -> DecryptedStream:
        """Start decrypting `source`; with partial=True the caller may stop reading early (peeking)."""
        passphrase = self.folder / "passphrase"
        secret_keys = self.folder / "secret-keys.gpg"
        if not passphrase.is_file() and not secret_keys.is_file():
            raise ImageError(
                f"{source} is encrypted and no decryption secret is configured",
                rule="decrypt",
                hint=f"put the passphrase in {passphrase} or the secret keys in {secret_keys}",
            )
        home = tempfile.mkdtemp(prefix="rocket-decrypt-")
        base = [self.gpg, "--batch", "--no-tty", "--no-autostart", "--quiet", "--homedir", home]
        if passphrase.is_file():
            base += ["--pinentry-mode", "loopback", "--passphrase-file", str(passphrase)]
        try:
            if secret_keys.is_file():
                subprocess.run(base + ["--import", str(secret_keys)], capture_output=True, check=True, timeout=60)
            process = subprocess.Popen(
                base + ["--decrypt", "--output", "-", os.fspath(source)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(home, ignore_errors=True)
            raise ImageError(f"cannot start gpg to decrypt {source}: {exc}", rule="decrypt") from exc
        return DecryptedStream(process, home, source, partial=partial)
