"""The appc.rocket modules run by the real ansible-playbook against localhost, each host a temporary folder.

Every playbook runs with `ansible_connection=local` and the venv's own Python as the interpreter (pyenv's
shims would mislead interpreter discovery), the collection reachable through ANSIBLE_COLLECTIONS_PATH (a
temporary folder holding ansible_collections/appc/rocket -> this checkout), and the callback in
callback_plugins/ writing every task result as JSON, which is what the tests read.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from gpgkeys import GpgHome
from httpsserver import Route, Server
from images import image_maker, image_manifest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
TEMPLATE = "https://{host}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}"

pytestmark = [
    pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is not installed in the venv"),
    pytest.mark.slow,  # each ansible-playbook run takes a few seconds
]


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections path with this checkout as appc.rocket (an untracked link: a tracked one fails sanity)."""
    base = tmp_path_factory.mktemp("collections")
    (base / "ansible_collections" / "appc").mkdir(parents=True)
    (base / "ansible_collections" / "appc" / "rocket").symlink_to(ROOT)
    return base


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    home = GpgHome(tmp_path_factory.mktemp("gnupg"))
    keys = {
        "home": home,
        "publisher": home.generate("Publisher <publisher@example.com>"),
        "stranger": home.generate("Stranger <stranger@example.com>"),
    }
    yield keys
    home.close()


@dataclass
class Run:
    """One ansible-playbook run: its exit code, its output, and every task's result in order."""

    returncode: int
    output: str
    results: List[Dict[str, Any]]

    def result(self, index: int) -> Dict[str, Any]:
        return self.results[index]["result"]

    def failed(self, index: int) -> Dict[str, Any]:
        """The result of a task that must have failed."""
        assert self.results[index]["status"] == "failed", self.results[index]
        return self.result(index)

    def changed(self) -> List[bool]:
        return [bool(entry["result"].get("changed")) for entry in self.results]


@dataclass
class Host:
    """A managed host inside a folder: rocket's data, local and system config folders are under it."""

    root: Path
    collections: Path

    @property
    def data(self) -> Path:
        return self.root / "var-lib-rocket"

    @property
    def local(self) -> Path:
        return self.root / "etc-rocket"

    @property
    def system(self) -> Path:
        return self.root / "usr-lib-rocket"

    def folders(self) -> Dict[str, str]:
        return {"dir": str(self.data), "local_config": str(self.local), "system_config": str(self.system)}

    def play(self, tasks: List[Dict[str, Any]], *, check: bool = False, diff: bool = False) -> Run:
        """Run the tasks in one play on this host; each task given as {module: args}, rocket's folders added."""
        work = self.root / f"play-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        steps = []
        for task in tasks:
            ((module, args),) = task.items()
            merged = dict(args)
            if module not in ("appc.rocket.image_build",):
                merged = {**self.folders(), **args}
            steps.append({"name": f"{module} {len(steps)}", module: merged, "ignore_errors": True})
        playbook = [{"hosts": "managed", "gather_facts": False, "tasks": steps}]
        (work / "playbook.yml").write_text(json.dumps(playbook))  # JSON is YAML
        (work / "inventory").write_text(
            f"managed ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        results = work / "results.jsonl"
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
            ANSIBLE_CALLBACKS_ENABLED="record_results",
            ANSIBLE_HOME=str(work / "ansible-home"),
            ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ROCKET_TEST_RESULTS=str(results),
        )
        command = [str(ANSIBLE_PLAYBOOK), "-i", str(work / "inventory"), str(work / "playbook.yml")]
        command += (["--check"] if check else []) + (["--diff"] if diff else [])
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=work)
        output = done.stdout + done.stderr
        lines = results.read_text().splitlines() if results.exists() else []
        shutil.rmtree(work)
        assert "Traceback" not in output, output
        assert done.returncode == 0, output
        run = Run(done.returncode, output, [json.loads(line) for line in lines])
        assert len(run.results) == len(tasks), output
        return run


@pytest.fixture
def host(tmp_path: Path, collections: Path) -> Host:
    return Host(tmp_path / "host", collections)


def snapshot(*roots: Path) -> Dict[str, str]:
    """Every path under the roots with its type, mode and content hash: what 'changes nothing' compares."""
    seen: Dict[str, str] = {}
    for root in roots:
        if not root.exists():
            seen[str(root)] = "absent"
            continue
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder, name)
                info = path.lstat()
                if path.is_symlink():
                    seen[str(path)] = f"link {os.readlink(path)}"
                elif path.is_dir():
                    seen[str(path)] = f"dir {oct(info.st_mode)}"
                else:
                    seen[str(path)] = f"file {oct(info.st_mode)} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    return seen


def write_folder(folder: Path, name: str, files: Dict[str, str], *, version: str = "1.0.0") -> Path:
    """An image folder for image_build: `manifest` and `rootfs/`."""
    (folder / "rootfs").mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = folder / "rootfs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (folder / "manifest").write_text(json.dumps(image_manifest(name, labels={"version": version})))
    return folder


# -- trust ---------------------------------------------------------------------------------------------


def test_trust_check_mode_then_idempotent_with_diff(host: Host, gpg: Dict[str, Any]) -> None:
    home: GpgHome = gpg["home"]
    key_file = host.root / "publisher.asc"
    host.root.mkdir()
    key_file.write_bytes(home.export(gpg["publisher"]))
    task = {"appc.rocket.trust": {"prefix": "example.com/app", "key": str(key_file)}}
    untouched = snapshot(host.data, host.local, host.system)

    checked = host.play([task], check=True, diff=True)
    assert checked.changed() == [True]
    assert checked.result(0)["added"] == [gpg["publisher"]]
    assert gpg["publisher"] in checked.result(0)["diff"]["after"]
    assert snapshot(host.data, host.local, host.system) == untouched

    applied = host.play([task, task], diff=True)
    assert applied.changed() == [True, False]
    assert applied.result(0)["fingerprints"] == [gpg["publisher"]]
    assert applied.result(0)["diff"]["before"] == ""
    assert f"trusted prefix example.com/app: {gpg['publisher']}" in applied.result(0)["diff"]["after"]
    stored = host.local / "trustedkeys" / "prefix.d" / "example.com" / "app" / gpg["publisher"]
    assert stored.read_bytes() == home.export(gpg["publisher"], armor=False)  # stored unarmored, as `rocket trust` does

    converged = snapshot(host.data, host.local, host.system)
    assert host.play([task], check=True).changed() == [False]
    assert snapshot(host.data, host.local, host.system) == converged


def test_trust_exclusive_absent_and_deny_list(host: Host, gpg: Dict[str, Any]) -> None:
    home: GpgHome = gpg["home"]
    host.root.mkdir()
    keys = {}
    for who in ("publisher", "stranger"):
        keys[who] = host.root / f"{who}.asc"
        keys[who].write_bytes(home.export(gpg[who]))
    prefix = "example.com/app"
    host.play([{"appc.rocket.trust": {"prefix": prefix, "key": str(keys["publisher"])}}])

    # exclusive: the stranger's key replaces the publisher's; in check mode first, which writes nothing
    exclusive = {"appc.rocket.trust": {"prefix": prefix, "key": str(keys["stranger"]), "exclusive": True}}
    before = snapshot(host.local)
    checked = host.play([exclusive], check=True)
    assert checked.result(0)["removed"] == [gpg["publisher"]]
    assert checked.result(0)["fingerprints"] == [gpg["stranger"]]
    assert snapshot(host.local) == before
    assert host.play([exclusive, exclusive]).changed() == [True, False]
    folder = host.local / "trustedkeys" / "prefix.d" / "example.com" / "app"
    assert sorted(p.name for p in folder.iterdir()) == [gpg["stranger"]]

    # absent by fingerprint (any case), then nothing left to remove
    absent = {"appc.rocket.trust": {"prefix": prefix, "fingerprints": [gpg["stranger"].upper()], "state": "absent"}}
    removed = host.play([absent, absent])
    assert removed.changed() == [True, False]
    assert removed.result(0)["removed"] == [gpg["stranger"]]

    # the deny-list: a policy file that keeps rkt's rule for everything else, its version raised once
    deny = {"appc.rocket.trust": {"deny": [gpg["stranger"]]}}
    denied = host.play([deny, deny], diff=True)
    assert denied.changed() == [True, False]
    assert denied.result(0)["deny"] == [gpg["stranger"]]
    assert f"denied: {gpg['stranger']}" in denied.result(0)["diff"]["after"]
    policy = json.loads((host.local / "policy.json").read_text())
    assert policy == {"version": 1, "default": {"type": "signedBy"}, "deny": [gpg["stranger"]]}
    assert (host.data / "trust" / "policy-version").read_text().strip() == "1"
    undeny = {"appc.rocket.trust": {"deny": [gpg["stranger"]], "state": "absent"}}
    before = snapshot(host.local, host.data)
    assert host.play([undeny], check=True).changed() == [True]
    assert snapshot(host.local, host.data) == before
    assert host.play([undeny]).result(0)["deny"] == []
    assert json.loads((host.local / "policy.json").read_text())["version"] == 2


def test_trust_refuses_a_key_that_is_not_the_pinned_one(host: Host, gpg: Dict[str, Any]) -> None:
    host.root.mkdir()
    key_file = host.root / "stranger.asc"
    key_file.write_bytes(gpg["home"].export(gpg["stranger"]))
    task = {"appc.rocket.trust": {"prefix": "example.com", "key": str(key_file), "fingerprint": gpg["publisher"]}}
    result = host.play([task]).failed(0)
    assert result["error"] == "TrustError" and result["reason"] == "fingerprint-mismatch"
    assert gpg["stranger"] in result["msg"] and gpg["publisher"] in result["msg"]
    assert not (host.local / "trustedkeys").exists()


# -- image_build, image from a file, image_info -------------------------------------------------------------


def test_build_sign_fetch_and_list_four_ways(host: Host, gpg: Dict[str, Any]) -> None:
    """Check mode on a fresh host, the real run, a second run, check mode on the converged host."""
    home: GpgHome = gpg["home"]
    source = write_folder(host.root / "src", "example.com/app/web", {"index.html": "hello\n"})
    dest = host.root / "www" / "web-1.0.0-linux-amd64.aci"
    dest.parent.mkdir(parents=True)
    key_file = host.root / "publisher.asc"
    key_file.write_bytes(home.export(gpg["publisher"]))
    tasks = [
        {"appc.rocket.trust": {"prefix": "example.com/app", "key": str(key_file)}},
        {
            "appc.rocket.image_build": {
                "path": str(source),
                "dest": str(dest),
                "source_date_epoch": 1700000000,
                "gpg_home": str(home.path),
                "key": gpg["publisher"],
            }
        },
        {"appc.rocket.image": {"name": str(dest)}},  # verified by the signature beside it
        {"appc.rocket.image_info": {"names": ["example.com/app/web"]}},
        {"appc.rocket.gc": {}},  # default grace periods: nothing to collect
    ]
    watched = (host.data, host.local, host.system, dest.parent)
    fresh = snapshot(*watched)
    checked = host.play(tasks, check=True, diff=True)
    assert checked.changed() == [True, True, True, False, False]
    assert checked.result(1)["built"] and checked.result(1)["signed"]
    assert checked.result(1)["image_id"].startswith("sha512-")
    assert "image_id" not in checked.result(2)  # unknown until the archive exists
    assert snapshot(*watched) == fresh

    applied = host.play(tasks, diff=True)
    assert applied.changed() == [True, True, True, False, False]
    image_id = applied.result(1)["image_id"]
    assert applied.result(2)["image_id"] == image_id
    assert applied.result(2)["image"]["trust"] == f"signature:{gpg['publisher']}"
    assert applied.result(2)["image"]["version"] == "1.0.0"
    assert applied.result(2)["diff"]["after"] == f"{image_id}\n"
    assert [image["id"] for image in applied.result(3)["images"]] == [image_id]
    assert Path(f"{dest}.asc").read_bytes().startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert "sha512-" + hashlib.sha512(dest.read_bytes()).hexdigest() != image_id  # gzip: the ID is the tar's

    again = host.play(tasks)
    assert again.changed() == [False] * 5
    assert again.result(2)["image_id"] == image_id
    converged = snapshot(*watched)  # (a real run of a file fetch verifies again: one more audit line)
    assert host.play(tasks, check=True).changed() == [False] * 5
    assert snapshot(*watched) == converged

    # A changed file rebuilds and re-signs; the store gets the new image beside the old one.
    (source / "rootfs" / "index.html").write_text("hello again\n")
    changed = host.play(tasks[1:3])
    assert changed.changed() == [True, True]
    assert changed.result(0)["image_id"] != image_id


def test_image_from_a_file_needs_a_signature_or_the_insecure_option(host: Host) -> None:
    archive = image_maker(host.root)("example.com/tools", {"bin/tool": "#!/bin/sh\n"}, labels={"version": "2.0"})
    strict = {"appc.rocket.image": {"name": str(archive)}}
    refused = host.play([strict]).failed(0)
    assert refused["error"] == "TrustError" and refused["reason"] == "unsigned"
    assert str(archive) in refused["msg"] and refused["hint"]

    insecure = {"appc.rocket.image": {"name": str(archive), "insecure_options": ["image"]}}
    run = host.play([insecure, insecure])
    assert run.changed() == [True, False]
    assert run.result(0)["image"]["trust"] == "insecure"
    assert any("verification skipped" in warning for warning in run.result(0)["warnings"])

    absent = {"appc.rocket.image": {"name": "example.com/tools", "state": "absent"}}
    before = snapshot(host.data)
    checked = host.play([absent], check=True)
    assert checked.result(0)["removed"] == [run.result(0)["image_id"]]
    assert snapshot(host.data) == before
    assert host.play([absent, absent]).changed() == [True, False]
    assert host.play([{"appc.rocket.image_info": {}}]).result(0)["images"] == []


# -- gc ------------------------------------------------------------------------------------------------------


def test_gc_removes_exited_pods_then_their_images(host: Host) -> None:
    archive = image_maker(host.root)("example.com/old", {"x": "1"})
    imported = host.play([{"appc.rocket.image": {"name": str(archive), "insecure_options": ["image"]}}])
    image_id = imported.result(0)["image_id"]
    # A pod that exited long ago and still holds the image, and the remains of an interrupted deletion.
    exited = host.data / "pods" / "exited-garbage" / str(uuid.uuid4())
    exited.mkdir(parents=True)
    (exited / "exited-at").write_text(str(time.time() - 7200))
    (exited / "runtime.json").write_text(json.dumps({"created": 0, "apps": {"app": {"image_id": image_id}}}))
    leftover = host.data / "pods" / "garbage" / str(uuid.uuid4())
    leftover.mkdir(parents=True)

    keep = {"appc.rocket.gc": {"pod_grace_period": "3h", "image_grace_period": "0s"}}
    assert host.play([keep]).result(0)["removed_pods"] == [leftover.name]  # the image is still used

    collect = {"appc.rocket.gc": {"pod_grace_period": "1h", "image_grace_period": "0s"}}
    before = snapshot(host.data)
    checked = host.play([collect], check=True, diff=True).result(0)
    assert checked["changed"] and checked["removed_pods"] == [exited.name]
    assert checked["removed_images"] == [image_id]  # freed by the pod that would go first
    assert f"image {image_id}" in checked["diff"]["before"]
    assert snapshot(host.data) == before

    run = host.play([collect, collect])
    assert run.changed() == [True, False]
    assert run.result(0)["removed_pods"] == [exited.name] and run.result(0)["removed_images"] == [image_id]
    assert not exited.exists()


# -- discovery over HTTPS --------------------------------------------------------------------------------------


def discovery_page(host: str) -> bytes:
    tags = f'<meta name="ac-discovery" content="{host} {TEMPLATE.format(host=host)}">'
    tags += f'<meta name="ac-discovery-pubkeys" content="{host} https://{host}/pubkeys.gpg">'
    return f"<html><head>{tags}</head><body></body></html>".encode()


@dataclass
class Site:
    """A publisher's HTTPS site on its own loopback address, port 443, with discovery for `<address>/...`."""

    address: str
    server: Server
    www: Path
    gpg: Dict[str, Any]

    def publish(self, path: str, version: str, *, signer: Optional[str], make: Any) -> str:
        name = f"{self.address}/{path}"
        archive = make(name, {"etc/version": version}, labels={"version": version})
        target = self.www / "images" / f"{name}-{version}-linux-amd64.aci"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read_bytes())
        if signer is not None:
            Path(f"{target}.asc").write_bytes(self.gpg["home"].sign(self.gpg[signer], target))
        return name


@pytest.fixture
def site(host: Host, gpg: Dict[str, Any]) -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("binds port 443 on a loopback address")
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    www = host.root / "www"
    www.mkdir(parents=True)
    (www / "pubkeys.gpg").write_bytes(gpg["home"].export(gpg["publisher"]))
    routes = {"/": Route(body=discovery_page(address))}
    with Server(routes, root=www, ca_dir=host.local / "certs.d", host=address, port=443) as server:
        yield Site(address, server, www, gpg)


def test_discovered_key_and_image_over_https(host: Host, site: Site) -> None:
    make = image_maker(host.root)
    name = site.publish("app", "1.0.0", signer="publisher", make=make)
    stranger = site.publish("other", "1.0.0", signer="stranger", make=make)
    trust = {"appc.rocket.trust": {"prefix": site.address, "fingerprints": [site.gpg["publisher"]]}}
    image = {"appc.rocket.image": {"name": f"{name}:1.0.0"}}

    before = snapshot(host.data, host.local)
    checked = host.play([trust, image], check=True)
    assert checked.changed() == [True, True]
    assert site.server.requests == []  # pinned key and image judged without a single request
    assert snapshot(host.data, host.local) == before

    run = host.play([trust, image, trust, image])
    assert run.changed() == [True, True, False, False]
    assert run.result(1)["image"]["trust"] == f"signature:{site.gpg['publisher']}"
    assert run.result(3)["image_id"] == run.result(1)["image_id"]

    refused = host.play([{"appc.rocket.image": {"name": f"{stranger}:1.0.0"}}]).failed(0)
    assert refused["error"] == "TrustError"
    assert stranger in refused["msg"] and refused["hint"]
    listed = host.play([{"appc.rocket.image_info": {}}]).result(0)["images"]
    assert [image["name"] for image in listed] == [name]
