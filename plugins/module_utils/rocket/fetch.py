"""Fetching: an image named, at a URL or in a file, downloaded, verified, then imported with its dependencies.

The order is the point of this file:
1. find it (the store, for pull policies `new` and `never`; the download cache; discovery or mirrors);
2. download the archive (resumable) and its detached signature;
3. read its manifest without importing it, and decide trust for that name (policy, keys, gpgv); a
   rejection is audited and leaves the store untouched;
4. fetch its dependencies the same way (a declared imageID must match, a declared size bounds the read);
5. import it with a check that runs before it becomes visible: the manifest's name and labels must be
   the ones asked for (a validly signed image served under another name is refused), and, when the
   request names no version, it must not be older than the newest of that name in the store (rollback).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .audit import AuditLog
from .compression import archive_image_id, open_tar_stream
from .decrypt import Decryptor, is_encrypted
from .errors import FetchError, ImageError, NotFoundError, RocketError, TrustError, UsageError
from .extract import peek_manifest
from .fileio import atomic_write
from .index import ImageRecord
from .keystore import Keystore
from .limits import ImportLimits
from .locks import FileLock
from .manifest import image_labels, load_image_manifest
from .names import is_full_image_id, parse_image_reference
from .policy import Policy, load_policy
from .store import Store
from .verify import TrustDecision, check_trust

if TYPE_CHECKING:
    from .discovery import MirrorMap
    from .transport import HttpClient

PULL_POLICIES = ("new", "update", "never")
MAX_SIGNATURE = 1 << 20
MAX_DEPENDENCY_DEPTH = 32
URL_SCHEMES = ("https://", "http://", "file://")

ProgressFactory = Callable[[str], Optional[Callable[[int, Optional[int]], None]]]


@dataclass(frozen=True)
class ImageRequest:
    """What the operator asked for: `kind` is 'file', 'url' or 'name' (then `name` and `labels`)."""

    text: str
    kind: str
    name: str = ""
    labels: Dict[str, str] = field(default_factory=dict)

    @property
    def names_version(self) -> bool:
        return "version" in self.labels


def parse_request(text: str) -> ImageRequest:
    """Tell a URL, a file path and an image name apart, the way rkt does."""
    if text.startswith(URL_SCHEMES):
        return ImageRequest(text=text, kind="url")
    if os.path.exists(text) or text.startswith(("/", "./", "../")) or text.endswith(".aci"):
        return ImageRequest(text=text, kind="file")
    name, labels = parse_image_reference(text)
    return ImageRequest(text=text, kind="name", name=name, labels=labels)


@dataclass
class FetchResult:
    """One fetched image and how it got into the store."""

    record: ImageRecord
    already_present: bool
    source: str
    decision: Optional[TrustDecision] = None
    dependencies: List[FetchResult] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def version_key(version: str) -> Tuple[Tuple[int, object], ...]:
    """Order versions like `1.10.0` > `1.9.2` > `1.9.2-rc1`: numbers numerically, words alphabetically."""
    main, _dash, pre = version.partition("-")
    parts: List[Tuple[int, object]] = [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+_]", main) if p]
    # A pre-release sorts before its release: mark the release with a high final element.
    parts.append((2, "") if not pre else (1, pre))
    return tuple(parts)


@dataclass(frozen=True)
class FetchPlan:
    """What a fetch would do, judged without a download: `record` is the stored image it would settle on
    (None: it would download and import), `asks_server` whether it would still ask the server for a newer
    one (pull policy `update`, or a download record past its max-age), which only the real fetch can tell."""

    record: Optional[ImageRecord]
    asks_server: bool


def plan_fetch(store: Optional[Store], text: str, *, pull_policy: str = "new") -> FetchPlan:
    """Judge `Fetcher.fetch(text)` from the store's index and download records only: no network, no writes.

    `store` None stands for a data directory that has no store yet. A file is hashed (read only) to find
    its image ID; an encrypted file cannot be, so it counts as one to import.
    """
    if pull_policy not in PULL_POLICIES:
        raise UsageError(f"unknown pull policy {pull_policy!r}", hint="use new, update or never")
    request = parse_request(text)
    if request.kind == "name":
        best = _best_stored(store, request, None) if store is not None else None
        if best is None and pull_policy == "never":
            raise _not_stored(request)
        return FetchPlan(best, asks_server=best is None or pull_policy == "update")
    if request.kind == "url":
        if store is None or not store.paths.downloads.is_dir():
            return FetchPlan(None, asks_server=True)
        remembered = DownloadCache(store.paths.downloads, store.paths.locks).record(request.text)
        cached = store.index.get(remembered["image"]) if remembered.get("image") else None
        if cached is None:
            return FetchPlan(None, asks_server=True)
        max_age = remembered.get("max_age")
        fresh = max_age is not None and time.time() < remembered.get("fetched", 0) + max_age
        return FetchPlan(cached, asks_server=pull_policy == "update" and not fresh)
    if not Path(request.text).is_file():
        raise UsageError(f"{request.text}: no such image file", hint="check the path", image=request.text)
    try:
        image_id, _compression = archive_image_id(request.text)
    except ImageError as exc:
        if exc.rule != "encrypted":
            raise
        return FetchPlan(None, asks_server=False)
    return FetchPlan(store.index.get(image_id) if store is not None else None, asks_server=False)


def _best_stored(store: Store, request: ImageRequest, expected_id: Optional[str]) -> Optional[ImageRecord]:
    """The newest stored image (highest version, then latest import) that matches a name request."""
    if expected_id is not None:
        record = store.index.get(expected_id)
        matches = [record] if record is not None else []
    else:
        matches = [
            r for r in store.index.by_name(request.name) if all(r.labels.get(k) == v for k, v in request.labels.items())
        ]
    if not matches:
        return None
    return max(matches, key=lambda r: (version_key(r.version), r.import_time))


def _not_stored(request: ImageRequest) -> NotFoundError:
    return NotFoundError(
        f"{request.text} is not in the store and the pull policy is never",
        hint="fetch it with --pull-policy=new",
        reference=request.text,
    )


class DownloadCache:
    """Per-URL records of what a download gave (ETag, max-age, image ID) and the resumable files."""

    def __init__(self, folder: Path, locks: Path) -> None:
        self.folder = folder
        self.locks = locks
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def key(self, url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()

    def file(self, url: str) -> Path:
        return self.folder / f"{self.key(url)}.aci"

    def lock(self, url: str) -> FileLock:
        return FileLock(self.locks / f"download-{self.key(url)}.lock")

    def record(self, url: str) -> Dict[str, Any]:
        try:
            value = json.loads((self.folder / f"{self.key(url)}.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def remember(self, url: str, *, image_id: str, etag: Optional[str], max_age: Optional[int]) -> None:
        entry = {"url": url, "image": image_id, "etag": etag, "max_age": max_age, "fetched": time.time()}
        atomic_write(self.folder / f"{self.key(url)}.json", json.dumps(entry).encode(), mode=0o600)


class Fetcher:
    """Fetches images into one store under one configuration; one instance per command."""

    def __init__(
        self,
        store: Store,
        *,
        local_config: Path,
        system_config: Path,
        insecure: FrozenSet[str] = frozenset(),
        pull_policy: str = "new",
        signature: Optional[str] = None,
        client: Optional[HttpClient] = None,
        progress: Optional[ProgressFactory] = None,
    ) -> None:
        if pull_policy not in PULL_POLICIES:
            raise UsageError(f"unknown pull policy {pull_policy!r}", hint="use new, update or never")
        self.store = store
        self.local_config = local_config
        self.system_config = system_config
        self.insecure = insecure
        self.pull_policy = pull_policy
        self.signature = signature
        self._client = client
        self.progress = progress
        self.keystore = Keystore(local_config=local_config, system_config=system_config)
        self._mirrors: Optional[MirrorMap] = None
        self.audit = AuditLog(store.paths.audit_log)
        self.cache = DownloadCache(store.paths.downloads, store.paths.locks)
        self.decryptor = Decryptor(local_config)
        self._policy: Optional[Policy] = None

    # The network stack (ssl, http.client, html.parser) is loaded only when something is downloaded:
    # a fetch of a local file, and `rocket run` of an image in the store, start that much faster.
    @property
    def client(self) -> HttpClient:
        if self._client is None:
            from .transport import client_from_config

            self._client = client_from_config(self.local_config, self.system_config, insecure=self.insecure)
        return self._client

    @property
    def mirrors(self) -> MirrorMap:
        if self._mirrors is None:
            from .discovery import load_mirrors

            self._mirrors = load_mirrors(self.local_config)
        return self._mirrors

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = load_policy(
                local_config=self.local_config, system_config=self.system_config, state_dir=self.store.paths.root
            )
        return self._policy

    # -- entry point ----------------------------------------------------------------------------

    def fetch(self, text: str) -> FetchResult:
        """Fetch one image given as the operator typed it."""
        return self._fetch(parse_request(text), expected_id=None, max_size=None, chain=())

    def _fetch(
        self, request: ImageRequest, *, expected_id: Optional[str], max_size: Optional[int], chain: Sequence[str]
    ) -> FetchResult:
        if request.kind == "name":
            found = self._from_store(request, expected_id)
            if found is not None:
                return found
            from .discovery import discover

            endpoints = discover(
                request.name,
                request.labels,
                client=self.client,
                insecure_http="http" in self.insecure,
                mirrors=self.mirrors,
            )
            failures: List[str] = []
            for aci_url, asc_url in endpoints.acis:
                try:
                    return self._fetch_url(request, aci_url, asc_url, expected_id, max_size, chain)
                except FetchError as exc:
                    failures.append(f"{aci_url}: {exc.message}")
            raise FetchError(
                f"cannot download {request.name}: " + "; ".join(failures),
                hint="check the network and the discovery page",
                image=request.name,
                reason="not-found",
            )
        if request.kind == "url":
            signature_url = self.signature or request.text + ".asc"
            return self._fetch_url(request, request.text, signature_url, expected_id, max_size, chain)
        path = Path(request.text)
        if not path.is_file():
            raise UsageError(f"{request.text}: no such image file", hint="check the path", image=request.text)
        signature = self._read_signature(self.signature or request.text + ".asc", required=False)
        return self._verify_and_import(request, path, signature, request.text, expected_id, max_size, chain)

    def _from_store(self, request: ImageRequest, expected_id: Optional[str]) -> Optional[FetchResult]:
        """For `new` and `never`, an image already in the store that matches the request."""
        if self.pull_policy == "update":
            return None
        best = _best_stored(self.store, request, expected_id)
        if best is not None:
            return FetchResult(record=best, already_present=True, source="store")
        if self.pull_policy == "never":
            raise _not_stored(request)
        return None

    # -- downloads ------------------------------------------------------------------------------

    def _fetch_url(
        self,
        request: ImageRequest,
        url: str,
        signature_url: str,
        expected_id: Optional[str],
        max_size: Optional[int],
        chain: Sequence[str],
    ) -> FetchResult:
        with self.cache.lock(url):
            remembered = self.cache.record(url)
            cached = self.store.index.get(remembered["image"]) if remembered.get("image") else None
            if cached is not None and (expected_id is None or cached.id == expected_id):
                fresh = (
                    remembered.get("max_age") is not None
                    and time.time() < remembered["fetched"] + remembered["max_age"]
                )
                if self.pull_policy != "update" or fresh:
                    return FetchResult(record=cached, already_present=True, source=url)
            limit = max_size or self.store.limits.max_size
            target = self.cache.file(url)
            progress = self.progress(url) if self.progress else None
            download = self.client.download(
                url,
                target,
                max_size=limit,
                etag=remembered.get("etag") if cached else None,
                progress=progress,
                durable=False,  # imported and deleted right away
            )
            if download.status == "not-modified" and cached is not None:
                self.cache.remember(url, image_id=cached.id, etag=download.etag, max_age=download.max_age)
                return FetchResult(record=cached, already_present=True, source=url)
            try:
                signature = self._read_signature(signature_url, required=False)
                result = self._verify_and_import(request, target, signature, url, expected_id, max_size, chain)
                self.cache.remember(url, image_id=result.record.id, etag=download.etag, max_age=download.max_age)
            finally:
                if target.exists():
                    target.unlink()
        return result

    def _read_signature(self, location: str, *, required: bool) -> Optional[bytes]:
        """The detached signature at a URL or path; None when there is none (policy decides if that is fine)."""
        try:
            if location.startswith(URL_SCHEMES):
                return self.client.get(location, max_size=MAX_SIGNATURE).body
            with open(location, "rb") as stream:
                data = stream.read(MAX_SIGNATURE + 1)
            if len(data) > MAX_SIGNATURE:
                raise TrustError(f"signature {location} is over {MAX_SIGNATURE} bytes", reason="bad-signature")
            return data
        except FileNotFoundError:
            if required:
                raise UsageError(f"signature {location}: no such file") from None
            return None
        except FetchError as exc:
            if exc.context.get("reason") == "http-status" and exc.context.get("status") == 404 and not required:
                return None
            if exc.context.get("reason") in ("http-status", "not-found") and not required:
                return None
            raise

    # -- trust and import -----------------------------------------------------------------------

    def _verify_and_import(
        self,
        request: ImageRequest,
        path: Path,
        signature: Optional[bytes],
        source: str,
        expected_id: Optional[str],
        max_size: Optional[int],
        chain: Sequence[str],
    ) -> FetchResult:
        limits = ImportLimits(max_size=max_size, max_entries=self.store.limits.max_entries) if max_size else None
        manifest = self._peek(path, source, limits or self.store.limits)
        name = request.name or str(manifest["name"])
        try:
            decision = check_trust(
                name,
                path,
                signature,
                keystore=self.keystore,
                policy=self.policy,
                insecure_image="image" in self.insecure,
            )
        except TrustError as exc:
            self.audit.record("rejected", name=name, source=source, reason=str(exc.context.get("reason", "untrusted")))
            raise
        if len(chain) >= MAX_DEPENDENCY_DEPTH or name in chain:
            raise ImageError(
                f"dependencies of {chain[0] if chain else name} form a cycle or are too deep: "
                + " -> ".join([*chain, name]),
                rule="dependencies",
            )
        dependencies = [self._fetch_dependency(dep, [*chain, name]) for dep in manifest.get("dependencies") or []]

        def accept(image_id: str, imported: Dict[str, Any]) -> None:
            try:
                self._check_identity(request, image_id, imported, expected_id, source)
            except RocketError as exc:
                self.audit.record(
                    "rejected", name=name, source=source, image=image_id, reason=exc.context.get("reason", "mismatch")
                )
                raise

        if is_encrypted(path):
            with self.decryptor.open(path) as plain:

                def decrypted_and_accepted(image_id: str, imported: Dict[str, Any]) -> None:
                    plain.finish()  # gpg's integrity check ends with the stream: before the image is visible
                    accept(image_id, imported)

                result = self.store.import_archive(
                    plain,  # type: ignore[arg-type]
                    where=source,
                    accept=decrypted_and_accepted,
                    limits=limits,
                )
        else:
            result = self.store.import_archive(path, where=source, accept=accept, limits=limits)
        record = result.record
        if decision.how == "signature":
            trust = f"signature:{decision.fingerprint}"
        elif decision.how == "insecure-policy":
            trust = f"policy:{decision.scope or 'default'}"
        else:
            trust = "insecure"
        if not (result.already_present and record.trust.startswith(("signature:", "policy:"))):
            self.store.index.set_trust(record.id, trust)  # a verified import is not downgraded by a later one
        if decision.how == "signature" and decision.signature is not None:
            key_scope = decision.signature.key.scope
            self.audit.record(
                "verified",
                image=record.id,
                name=record.name,
                source=source,
                fingerprint=decision.fingerprint,
                scope=key_scope or "root",
                policy_scope=decision.scope or "default",
            )
        else:
            flag = "image" if decision.how == "insecure-flag" else f"policy:{decision.scope or 'default'}"
            self.audit.record("accepted-insecure", image=record.id, name=record.name, source=source, flag=flag)
        return FetchResult(
            record=record,
            already_present=result.already_present,
            source=source,
            decision=decision,
            dependencies=dependencies,
            warnings=result.warnings,
        )

    def _peek(self, path: Path, source: str, limits: ImportLimits) -> Dict[str, Any]:
        if is_encrypted(path):
            with self.decryptor.open(path, partial=True) as plain:
                try:
                    stream, _compression = open_tar_stream(plain)  # type: ignore[arg-type]
                    data = peek_manifest(stream, limits=limits)
                except ImageError:
                    plain.finish()  # a wrong passphrase shows up as an empty stream: say so instead
                    raise
        else:
            with open(path, "rb", buffering=0) as raw:
                stream, _compression = open_tar_stream(raw)
                data = peek_manifest(stream, limits=limits)
        return load_image_manifest(data, where=f"manifest of {source}")

    def _fetch_dependency(self, dependency: Dict[str, Any], chain: List[str]) -> FetchResult:
        labels = {str(item["name"]): str(item["value"]) for item in dependency.get("labels") or []}
        request = ImageRequest(
            text=str(dependency["imageName"]), kind="name", name=str(dependency["imageName"]), labels=labels
        )
        wanted = dependency.get("imageID")
        expected = wanted if isinstance(wanted, str) and is_full_image_id(wanted) else None
        size = dependency.get("size")
        return self._fetch(
            request, expected_id=expected, max_size=size if isinstance(size, int) and size > 0 else None, chain=chain
        )

    def _check_identity(
        self, request: ImageRequest, image_id: str, manifest: Dict[str, Any], expected_id: Optional[str], source: str
    ) -> None:
        """Before an image becomes visible: it is what was asked for, and not a rollback."""
        if expected_id is not None and image_id != expected_id:
            raise ImageError(
                f"{source} is image {image_id[:19]}…, but its dependent declares {expected_id[:19]}…",
                rule="image-id",
                hint="the publisher changed the dependency; ask for a consistent set",
                reason="id-mismatch",
            )
        if request.kind != "name":
            return
        labels = image_labels(manifest)
        if manifest["name"] != request.name:
            raise TrustError(
                f"{source} was fetched for {request.name} but its manifest names {manifest['name']}",
                hint="the server substituted another image; do not trust this source",
                reason="name-mismatch",
            )
        wrong = [k for k, v in request.labels.items() if labels.get(k) != v]
        if wrong:
            shown = ", ".join(f"{k}={labels.get(k, '(none)')} (asked {request.labels[k]})" for k in wrong)
            raise TrustError(
                f"{source} was fetched for {request.text} but its labels differ: {shown}",
                hint="the server substituted another image; do not trust this source",
                reason="label-mismatch",
            )
        version = labels.get("version")
        if version is None or request.names_version:
            return
        newer = [
            r.version
            for r in self.store.index.by_name(request.name)
            if r.version and version_key(r.version) > version_key(version)
        ]
        if newer:
            newest = max(newer, key=version_key)
            raise TrustError(
                f"{source} offers {request.name} version {version}, older than version {newest} in the store",
                hint=f"to go back on purpose, ask for it by version: {request.name}:{version}",
                reason="rollback",
            )
