"""Fetch end to end: real gpg keys, a real HTTPS discovery site on its own loopback address, the real CLI.

Each test gets a site on a random 127.x.y.z address, port 443, with a certificate from a throw-away CA
that only the test's local config trusts. Image names are `<address>/app…`, so discovery is the real
thing: `https://<address>/app?ac-discovery=1`, walking up to `https://<address>?ac-discovery=1`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from gpgkeys import GpgHome
from httpsserver import Route, Server
from images import ImageMaker, image_maker
from rocket.audit import AuditLog
from rocket.errors import FetchError, ImageError, TrustError
from rocket.fetch import Fetcher, version_key
from rocket.keystore import Keystore
from rocket.store import Store

ENGINE = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"
TEMPLATE = "https://{host}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binds port 443 on a loopback address")


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, str]]:
    home = GpgHome(tmp_path_factory.mktemp("gnupg"))
    keys = {
        "publisher": home.generate("Publisher <publisher@example.com>"),
        "stranger": home.generate("Stranger <stranger@example.com>"),
        "revoked": home.generate("Revoked <revoked@example.com>"),
    }
    keys["home"] = str(home.path)
    yield keys
    home.close()


@dataclass
class Site:
    """A publisher's web site and a host's configuration, side by side in one temporary folder."""

    host: str
    server: Server
    root: Path
    local: Path
    system: Path
    data: Path
    home: GpgHome
    keys: Dict[str, str]
    tmp: Path
    make: ImageMaker

    def name(self, path: str = "app") -> str:
        return f"{self.host}/{path}"

    def publish(
        self,
        path: str = "app",
        version: str = "1.0.0",
        *,
        signer: Optional[str] = "publisher",
        files: Optional[Dict[str, object]] = None,
        served_as: Optional[str] = None,
        **extra: object,
    ) -> Path:
        """Build, sign and put an image where the discovery template points (optionally under another name)."""
        archive = self.make(self.name(path), files or {"etc/version": version}, labels={"version": version}, **extra)
        served_path, served_version = (served_as or f"{path}:{version}").split(":")
        target = self.root / "images" / f"{self.host}/{served_path}-{served_version}-linux-amd64.aci"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read_bytes())
        if signer is not None:
            Path(f"{target}.asc").write_bytes(self.home.sign(self.keys[signer], target))
        return target

    def trust(self, prefix: str = "app", signer: str = "publisher") -> None:
        Keystore(local_config=self.local, system_config=self.system).add(
            self.home.export(self.keys[signer]), prefix=self.name(prefix) if prefix else self.host
        )

    def fetcher(self, **options: object) -> Fetcher:
        return Fetcher(Store(self.data), local_config=self.local, system_config=self.system, **options)  # type: ignore[arg-type]

    def audit(self) -> List[dict]:
        return AuditLog(self.data / "audit.jsonl").entries()

    def store_ids(self) -> List[str]:
        return [record.id for record in Store(self.data).images()]

    def rocket(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "rocket", "--dir", str(self.data), "--local-config", str(self.local)]
        command += ["--system-config", str(self.system), *args]
        env = dict(os.environ, PYTHONPATH=str(ENGINE))
        result = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        assert "Traceback" not in result.stderr, result.stderr
        if check:
            assert result.returncode == 0, result.stderr
        return result


def discovery_page(host: str, *, pubkeys: bool = True, prefix: str = "") -> bytes:
    tags = f'<meta name="ac-discovery" content="{prefix or host} {TEMPLATE.format(host=host)}">'
    if pubkeys:
        tags += f'<meta name="ac-discovery-pubkeys" content="{prefix or host} https://{host}/pubkeys.gpg">'
    return f"<html><head>{tags}</head><body></body></html>".encode()


@pytest.fixture
def site(tmp_path: Path, gpg: Dict[str, str]) -> Iterator[Site]:
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    local, system, root = tmp_path / "etc-rocket", tmp_path / "usr-lib-rocket", tmp_path / "www"
    for folder in (local, system, root):
        folder.mkdir()
    home = GpgHome(Path(gpg["home"]))
    (root / "pubkeys.gpg").write_bytes(home.export(gpg["publisher"]))
    routes = {"/": Route(body=discovery_page(host))}
    with Server(routes, root=root, ca_dir=local / "certs.d", host=host, port=443) as server:
        yield Site(host, server, root, local, system, tmp_path / "data", home, gpg, tmp_path, image_maker(tmp_path))


def sha512_id(path: Path) -> str:
    return "sha512-" + hashlib.sha512(path.read_bytes()).hexdigest()


# -- trust -------------------------------------------------------------------------------------------


def test_trust_by_discovery_with_a_pinned_fingerprint(site: Site) -> None:
    fingerprint = site.keys["publisher"]
    wrong = site.rocket("trust", "--prefix", site.name(), "--fingerprint", site.keys["stranger"], check=False)
    assert wrong.returncode == 254 and "pinned" in wrong.stderr
    unreviewed = site.rocket("trust", "--prefix", site.name(), check=False)
    assert unreviewed.returncode == 254 and "--fingerprint" in unreviewed.stderr
    assert not (site.local / "trustedkeys").exists() or not any((site.local / "trustedkeys").rglob("*"))

    site.rocket("trust", "--prefix", site.name(), "--fingerprint", fingerprint.upper())
    assert (site.local / "trustedkeys" / "prefix.d" / site.host / "app" / fingerprint).is_file()
    listed = json.loads(site.rocket("trust", "list", "--format=json").stdout)
    assert [(k["prefix"], k["fingerprint"]) for k in listed] == [(site.name(), fingerprint)]
    assert any("Publisher" in uid for uid in listed[0]["user_ids"])
    site.rocket("trust", "rm", "--prefix", site.name(), fingerprint)
    assert json.loads(site.rocket("trust", "list", "--format=json").stdout) == []


def test_trust_from_a_file_with_review_skipped_warns(site: Site) -> None:
    key_file = site.tmp / "key.asc"
    key_file.write_bytes(site.home.export(site.keys["publisher"]))
    added = site.rocket("trust", "--root", "--skip-fingerprint-review", str(key_file))
    assert "without review" in added.stderr
    assert (site.local / "trustedkeys" / "root.d" / site.keys["publisher"]).is_file()


# -- the happy paths ---------------------------------------------------------------------------------


def test_fetch_by_name_url_and_file(site: Site) -> None:
    published = site.publish()
    site.trust()
    by_name = site.rocket("fetch", "--full", site.name() + ":1.0.0").stdout.strip()
    assert by_name == sha512_id(published)
    assert site.rocket("fetch", site.name()).stdout.strip() == by_name[:19]  # pull policy new: from the store
    url = f"https://{site.host}/images/{site.host}/app-1.0.0-linux-amd64.aci"
    assert site.rocket("fetch", "--full", "--pull-policy=update", url).stdout.strip() == by_name
    assert site.rocket("fetch", "--full", str(published)).stdout.strip() == by_name
    # A verified image may be prepared without any insecure option; one fetched unverified may not.
    assert site.rocket("prepare", site.name() + ":1.0.0", "--exec", "/etc/version").returncode == 0
    verified = [e for e in site.audit() if e["event"] == "verified"]
    assert verified and all(e["fingerprint"] == site.keys["publisher"] for e in verified)
    assert verified[0]["scope"] == site.name() and verified[0]["image"] == by_name


def test_fetch_with_dependencies(site: Site) -> None:
    base = site.publish("app/base", "1.0.0", files={"lib/base": "b"})
    site.publish(
        "app/top",
        "2.0.0",
        files={"bin/top": "t"},
        dependencies=[
            {
                "imageName": site.name("app/base"),
                "imageID": sha512_id(base),
                "labels": [{"name": "version", "value": "1.0.0"}],
            }
        ],
    )
    site.trust()
    lines = site.rocket("fetch", "--full", site.name("app/top") + ":2.0.0").stdout.split()
    assert lines[0] == sha512_id(base) and len(lines) == 2
    rendered = site.tmp / "rendered"
    site.rocket("image", "render", "--rootfs-only", lines[1], str(rendered))
    assert (rendered / "lib" / "base").read_text() == "b" and (rendered / "bin" / "top").read_text() == "t"


def test_dependency_with_another_image_id_is_refused(site: Site) -> None:
    site.publish("app/base", "1.0.0")
    wrong = "sha512-" + "0" * 128
    dependency = {
        "imageName": site.name("app/base"),
        "imageID": wrong,
        "labels": [{"name": "version", "value": "1.0.0"}],
    }
    site.publish("app/top", "1.0.0", dependencies=[dependency])
    site.trust()
    with pytest.raises(ImageError) as caught:
        site.fetcher().fetch(site.name("app/top") + ":1.0.0")
    assert caught.value.context.get("reason") == "id-mismatch"
    assert site.store_ids() == []


def test_etag_reuse_and_max_age(site: Site) -> None:
    published = site.publish()
    path = f"/images/{site.host}/app-1.0.0-linux-amd64.aci"
    site.server.route(path, Route(body=published.read_bytes(), etag='"v1"'))
    site.trust()
    first = site.fetcher(pull_policy="update").fetch(site.name() + ":1.0.0")
    second = site.fetcher(pull_policy="update").fetch(site.name() + ":1.0.0")
    assert (first.already_present, second.already_present) == (False, True)
    requests = site.server.requests_for(path)
    assert len(requests) == 2 and requests[1].headers.get("if-none-match") == '"v1"'
    # With max-age, a fresh record means no request at all.
    site.server.route(path, Route(body=published.read_bytes(), etag='"v1"', cache_control="max-age=3600"))
    site.fetcher(pull_policy="update").fetch(site.name() + ":1.0.0")  # 304, records max-age
    count = len(site.server.requests_for(path))
    site.fetcher(pull_policy="update").fetch(site.name() + ":1.0.0")
    assert len(site.server.requests_for(path)) == count


def test_broken_download_is_resumed(site: Site) -> None:
    published = site.publish(files={"blob": os.urandom(300_000).hex()})
    path = f"/images/{site.host}/app-1.0.0-linux-amd64.aci"
    site.server.route(path, Route(body=published.read_bytes(), etag='"big"', drop_after=200_000))
    site.trust()
    with pytest.raises(FetchError):
        site.fetcher().fetch(site.name() + ":1.0.0")
    assert site.store_ids() == []
    result = site.fetcher().fetch(site.name() + ":1.0.0")
    assert result.record.id == sha512_id(published)
    ranges = [r.headers.get("range") for r in site.server.requests_for(path)]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")


def test_encrypted_image_is_decrypted_before_hashing(site: Site) -> None:
    plain = site.publish(signer=None)
    encrypted = site.tmp / "secret.aci"
    passphrase = "correct horse battery staple"
    site.home.gpg(
        "--symmetric", "--passphrase", passphrase, "--output", str(encrypted), str(plain)
    )  # gpg's own compression wraps the tar
    (site.local / "decryption").mkdir()
    (site.local / "decryption" / "passphrase").write_text(passphrase)
    Path(f"{encrypted}.asc").write_bytes(site.home.sign(site.keys["publisher"], encrypted))
    site.trust()
    fetched = site.fetcher().fetch(str(encrypted))
    assert fetched.record.id == sha512_id(plain)
    (site.local / "decryption" / "passphrase").write_text("wrong")
    other = site.fetcher()
    other.store.remove(fetched.record.id)
    with pytest.raises(ImageError) as caught:
        other.fetch(str(encrypted))
    assert caught.value.rule == "decrypt"
    assert site.store_ids() == []


# -- what must be refused, leaving the store unchanged -----------------------------------------------


def refused(site: Site, image: str, reason: str, **options: object) -> None:
    before = site.store_ids()
    with pytest.raises((TrustError, FetchError, ImageError)) as caught:
        site.fetcher(**options).fetch(image)
    assert caught.value.context.get("reason") == reason, caught.value
    assert site.store_ids() == before
    assert os.listdir(site.data / "cas" / "tmp") == []


def test_unsigned_image(site: Site) -> None:
    site.publish(signer=None)
    site.trust()
    refused(site, site.name() + ":1.0.0", "unsigned")
    assert site.audit()[-1]["event"] == "rejected" and site.audit()[-1]["reason"] == "unsigned"


def test_unknown_key(site: Site) -> None:
    site.publish(signer="stranger")
    site.trust()
    refused(site, site.name() + ":1.0.0", "unknown-key")


def test_key_trusted_for_another_prefix(site: Site) -> None:
    site.publish()
    site.trust("other")
    refused(site, site.name() + ":1.0.0", "unknown-key")


def test_key_for_foo_does_not_cover_foobar(site: Site) -> None:
    site.publish("foobar")
    site.trust("foo")
    refused(site, site.name("foobar") + ":1.0.0", "unknown-key")


def test_tampered_archive(site: Site) -> None:
    published = site.publish()
    data = bytearray(published.read_bytes())
    data[-2000] ^= 0xFF
    published.write_bytes(bytes(data))
    site.trust()
    refused(site, site.name() + ":1.0.0", "bad-signature")


def test_validly_signed_image_served_under_another_name(site: Site) -> None:
    site.publish("app/evil", "1.0.0", served_as="app:1.0.0")  # signed by the trusted publisher
    site.trust()
    refused(site, site.name() + ":1.0.0", "name-mismatch")


def test_older_version_served_for_a_newer_request(site: Site) -> None:
    site.publish("app", "2.0.0")
    site.trust()
    site.fetcher().fetch(site.name() + ":2.0.0")
    site.publish("app", "1.0.0", served_as="app:latest")
    refused(site, site.name(), "rollback", pull_policy="update")
    site.publish("app", "1.0.0")
    assert site.fetcher().fetch(site.name() + ":1.0.0").record.version == "1.0.0"  # asked for explicitly


def test_older_version_served_for_a_named_version(site: Site) -> None:
    site.publish("app", "1.0.0", served_as="app:2.0.0")
    site.trust()
    refused(site, site.name() + ":2.0.0", "label-mismatch")


def test_revoked_key(site: Site) -> None:
    site.publish(signer="revoked")
    site.trust(signer="revoked")
    site.home.revoke(site.keys["revoked"])
    try:
        # The keystore gets the revoked key, as an operator would after the publisher revokes it.
        Keystore(local_config=site.local, system_config=site.system).add(
            site.home.export(site.keys["revoked"]), prefix=site.name()
        )
        refused(site, site.name() + ":1.0.0", "revoked-key")
    finally:
        pass


def test_deny_listed_key_and_policy_rollback(site: Site) -> None:
    site.publish()
    site.trust()
    policy = {"version": 2, "default": {"type": "signedBy"}, "deny": [site.keys["publisher"]]}
    (site.local / "policy.json").write_text(json.dumps(policy))
    refused(site, site.name() + ":1.0.0", "denied-key")
    (site.local / "policy.json").write_text(json.dumps({"version": 1, "default": {"type": "signedBy"}}))
    result = site.rocket("fetch", site.name() + ":1.0.0", check=False)
    assert result.returncode == 254 and "rollback" in result.stderr
    assert site.store_ids() == []


def test_insecure_flag_and_cli_output(site: Site) -> None:
    published = site.publish(signer=None)
    result = site.rocket("fetch", "--insecure-options=image", site.name() + ":1.0.0")
    assert result.stdout.strip() == sha512_id(published)[:19]
    assert "verification skipped" in result.stderr
    assert site.audit()[-1]["event"] == "accepted-insecure"
    refused_cli = site.rocket("fetch", "--pull-policy=update", site.name() + ":1.0.0", check=False)
    assert refused_cli.returncode == 254 and "no signature" in refused_cli.stderr


def test_version_order() -> None:
    ordered = ["1.0.0-rc1", "1.0.0", "1.2", "1.10.0", "2.0.0"]
    assert sorted(reversed(ordered), key=version_key) == ordered


def test_gzip_and_plain_give_one_image(site: Site) -> None:
    published = site.publish()
    compressed = site.tmp / "app.aci.gz"
    compressed.write_bytes(gzip.compress(published.read_bytes()))
    Path(f"{compressed}.asc").write_bytes(site.home.sign(site.keys["publisher"], compressed))
    site.trust()
    assert site.fetcher().fetch(str(compressed)).record.id == sha512_id(published)
