"""The playbooks for real: deploy-pods.yml converging hosts, and trust-rollout.yml rotating a key in batches.

Each "host" is this machine under an inventory name of its own, with its own --dir, config folders,
engine folder and launcher in a temporary folder; images come signed from a real HTTPS discovery site on
a random 127.x.y.z:443. Every run is the real ansible-playbook with the repository's own playbooks.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from gpgkeys import GpgHome
from httpsserver import Route, Server
from pods import BUSYBOX, busybox_image

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
TEMPLATE = "https://{host}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}"
SERVE = ["/bin/sh", "-c", 'mkdir -p /www && echo "web says $GREETING" > /www/index.html && exec httpd -f -p 80 -h /www']

pytestmark = [
    pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is not installed in the venv"),
    pytest.mark.skipif(os.geteuid() != 0, reason="pods need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static"),
]


@dataclass
class Run:
    returncode: int
    output: str
    results: List[Dict[str, Any]]

    def changed_tasks(self) -> List[str]:
        return [f"{r['host']}: {r['task']}" for r in self.results if r["result"].get("changed")]

    def task(self, name: str, host: str = "") -> Dict[str, Any]:
        found = [r for r in self.results if r["task"] == name and (not host or r["host"] == host)]
        assert found, (name, [r["task"] for r in self.results])
        return dict(found[-1]["result"])


@dataclass
class Site:
    host: str
    root: Path
    ca_file: Path
    home: GpgHome
    keys: Dict[str, str]

    def publish(self, tmp: Path, path: str, version: str, *, signer: str = "publisher", **app: Any) -> Path:
        name = f"{self.host}/{path}"
        built = busybox_image(tmp, name, labels={"version": version}, app={"user": "0", "group": "0", **app})
        target = self.root / "images" / f"{name}-{version}-linux-amd64.aci"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)
        Path(f"{target}.asc").write_bytes(self.home.sign(self.keys[signer], target))
        return target


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("site")
    home = GpgHome(tmp / "gnupg")
    keys = {name: home.generate(f"{name} <{name}@example.com>") for name in ("publisher", "successor", "stranger")}
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    page = (
        f'<meta name="ac-discovery" content="{host} {TEMPLATE.format(host=host)}">'
        f'<meta name="ac-discovery-pubkeys" content="{host} https://{host}/pubkeys.gpg">'
    ).encode()
    root = tmp / "www"
    root.mkdir()
    (root / "pubkeys.gpg").write_bytes(home.export(keys["publisher"]))
    with Server({"/": Route(body=page)}, root=root, ca_dir=tmp / "ca", host=host, port=443) as server:
        result = Site(host, root, Path(server.ca_file), home, keys)
        for version, greeting in (("1.0.0", "hello"),):
            result.publish(tmp, "web", version, exec=SERVE, ports=[{"name": "http", "protocol": "tcp", "port": 80}],
                           environment=[{"name": "GREETING", "value": greeting}])  # fmt: skip
        result.publish(tmp, "worker", "1.0.0", exec=["/bin/sleep", "3600"])
        result.publish(tmp, "rogue", "1.0.0", signer="stranger", exec=["/bin/sleep", "3600"])
        yield result
    home.close()


@dataclass
class Fleet:
    """Inventory hosts that are all this machine, each with its own rocket folders."""

    root: Path
    site: Site
    names: List[str]
    subnet: int

    def folders(self, name: str) -> Dict[str, Any]:
        base = self.root / name
        return {
            "rocket_dir": str(base / "var-lib-rocket"),
            "rocket_local_config": str(base / "etc-rocket"),
            "rocket_system_config": str(base / "usr-lib-rocket"),
            "rocket_engine_dir": str(base / "engine"),
            "rocket_launcher": str(base / "rocket"),
            # Leases live in each --dir; hosts sharing one machine need bridges and subnets of their own.
            "rocket_networks": [
                {
                    "name": "default",
                    "type": "bridge",
                    "bridge": self.bridge(name),
                    "isGateway": True,
                    "isDefaultGateway": True,
                    "ipMasq": True,
                    "ipam": {"type": "host-local", "subnet": f"10.{self.subnet}.{self.names.index(name)}.0/24"},
                }
            ],
        }

    def bridge(self, name: str) -> str:
        return f"rkt{self.subnet}n{self.names.index(name)}"

    def inventory(self, group_vars: Dict[str, Any], host_vars: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
        hosts = {name: {**self.folders(name), **host_vars.get(name, {})} for name in self.names}
        common = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "rocket_install_packages": False,
            "rocket_boot_service": False,
            "rocket_ca_certificates": [str(self.site.ca_file)],
        }
        return {"rocket_hosts": {"hosts": hosts, "vars": {**common, **group_vars}}}

    def play(self, playbook: str, inventory: Dict[str, Any], *args: str, expect_ok: bool = True) -> Run:
        work = self.root / f"run-{time.monotonic_ns()}"
        work.mkdir()
        (work / "inventory.json").write_text(json.dumps(inventory))
        results = work / "results.jsonl"
        collections = self.root / "collections"
        if not collections.exists():
            (collections / "ansible_collections" / "appc").mkdir(parents=True)
            (collections / "ansible_collections" / "appc" / "rocket").symlink_to(ROOT)
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(collections),
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
            ANSIBLE_CALLBACKS_ENABLED="record_results",
            ANSIBLE_HOME=str(work / "ansible-home"),
            ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
            ANSIBLE_NOCOLOR="1",
            ROCKET_TEST_RESULTS=str(results),
        )
        command = [str(ANSIBLE_PLAYBOOK), "-i", str(work / "inventory.json"), str(ROOT / playbook), *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=ROOT, timeout=600)
        output = done.stdout + done.stderr
        assert "Traceback" not in output, output
        if expect_ok:
            assert done.returncode == 0, output
        lines = results.read_text().splitlines() if results.exists() else []
        return Run(done.returncode, output, [json.loads(line) for line in lines])


@pytest.fixture()
def fleet(tmp_path: Path, site: Site) -> Iterator[Fleet]:
    result = Fleet(tmp_path, site, ["node1"], random.randint(200, 250))
    yield result
    for name in result.names:
        subprocess.run(["ip", "link", "del", result.bridge(name)], capture_output=True, check=False)
    for name in ["node1", "node2", "node3", "node4"]:
        data = tmp_path / name / "var-lib-rocket"
        if data.exists():
            rocket = [sys.executable, "-m", "rocket", "--dir", str(data)]
            env = dict(os.environ, PYTHONPATH=str(ROOT / "plugins" / "module_utils"))
            listing = subprocess.run(
                [*rocket, "list", "--format=json"], capture_output=True, text=True, env=env, check=False
            )
            running = [p["uuid"] for p in json.loads(listing.stdout or "[]") if p["state"] == "running"]
            if running:
                subprocess.run([*rocket, "stop", "--force", *running], capture_output=True, env=env, check=False)
            subprocess.run([*rocket, "gc", "--grace-period=0s"], capture_output=True, env=env, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deploy_vars(site: Site, port: int, greeting: str = "hello", *, pods: Any = None) -> Dict[str, Any]:
    return {
        "rocket_trusted_keys": [
            {"prefix": site.host, "key": f"https://{site.host}/pubkeys.gpg", "fingerprints": [site.keys["publisher"]]}
        ],
        "rocket_pods": pods
        if pods is not None
        else [
            {
                "name": "web",
                "apps": [{"image": f"{site.host}/web:1.0.0", "environment": {"GREETING": greeting}}],
                "ports": [{"name": "http", "host_port": port}],
            },
            {"name": "worker", "apps": [{"image": f"{site.host}/worker:1.0.0"}], "net": ["none"]},
        ],
    }


def uuids(run: Run) -> Dict[str, str]:
    return {pod["name"]: pod["uuid"] for pod in run.task("Converge the host's pods")["pods"]}


def page(port: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                return str(answer.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def tree(root: Path) -> List[str]:
    return sorted(str(p) for p in root.rglob("*")) if root.exists() else []


def supervisors(root: Path) -> List[str]:
    """The pod supervisors started for hosts under `root` (other pods on the machine are not this test's)."""
    found = subprocess.run(["pgrep", "-f", f"rocket.stage1.boot.*{root}"], capture_output=True, text=True, check=False)
    return sorted(found.stdout.split())


# -- deploy-pods.yml --------------------------------------------------------------------------------


def test_check_on_a_fresh_host_changes_nothing_and_says_what_would(fleet: Fleet, site: Site) -> None:
    before, processes = tree(fleet.root / "node1"), supervisors(fleet.root)
    run = fleet.play("deploy-pods.yml", fleet.inventory(deploy_vars(site, free_port()), {}), "--check", "--diff")
    assert tree(fleet.root / "node1") == before and supervisors(fleet.root) == processes == []
    outcome = run.task("Converge the host's pods")
    assert [(p["name"], p["action"]) for p in outcome["pods"]] == [("web", "created"), ("worker", "created")]
    assert "Trust keys" in " ".join(run.changed_tasks())


def test_deploy_converges_then_changes_nothing(fleet: Fleet, site: Site) -> None:
    port = free_port()
    inventory = fleet.inventory(deploy_vars(site, port), {})
    first = fleet.play("deploy-pods.yml", inventory)
    assert page(port).strip() == "web says hello"
    started = uuids(first)
    second = fleet.play("deploy-pods.yml", inventory)
    assert second.changed_tasks() == []
    assert uuids(second) == started
    checked = fleet.play("deploy-pods.yml", inventory, "--check")
    assert checked.changed_tasks() == []

    # One variable of one pod: exactly that pod is replaced, and --diff shows the change.
    changed = fleet.play("deploy-pods.yml", fleet.inventory(deploy_vars(site, port, "bonjour"), {}), "--diff")
    now = uuids(changed)
    assert now["worker"] == started["worker"] and now["web"] != started["web"]
    diff = changed.task("Converge the host's pods")["diff"]
    assert '"GREETING": "hello"' in diff["before"] and '"GREETING": "bonjour"' in diff["after"]
    assert page(port).strip() == "web says bonjour"

    # A pod no longer in the inventory goes (the role is exclusive by default).
    only_web = deploy_vars(site, port, "bonjour")
    only_web["rocket_pods"] = only_web["rocket_pods"][:1]
    removed = fleet.play("deploy-pods.yml", fleet.inventory(only_web, {}))
    outcome = {p["name"]: p["action"] for p in removed.task("Converge the host's pods")["pods"]}
    assert outcome == {"web": "unchanged", "worker": "removed"}


def test_an_untrusted_image_fails_the_play_and_leaves_pods_alone(fleet: Fleet, site: Site) -> None:
    port = free_port()
    good = deploy_vars(site, port)
    started = uuids(fleet.play("deploy-pods.yml", fleet.inventory(good, {})))
    bad = deploy_vars(site, port)
    bad["rocket_pods"][1]["apps"][0]["image"] = f"{site.host}/rogue:1.0.0"
    run = fleet.play("deploy-pods.yml", fleet.inventory(bad, {}), expect_ok=False)
    assert run.returncode != 0
    failure = run.task("Converge the host's pods")
    assert "rogue" in failure["msg"] and failure["error"] == "TrustError", failure
    assert uuids(fleet.play("deploy-pods.yml", fleet.inventory(good, {}))) == started
    assert page(port).strip() == "web says hello"


def test_a_policy_per_prefix_from_the_inventory(fleet: Fleet, site: Site) -> None:
    port = free_port()
    wanted = deploy_vars(site, port)
    wanted["rocket_trust_policy"] = {
        "version": 1,
        "default": {"type": "signedBy"},
        "scopes": {f"{site.host}/worker": {"type": "reject"}},
    }
    run = fleet.play("deploy-pods.yml", fleet.inventory(wanted, {}), expect_ok=False)
    failure = run.task("Converge the host's pods")
    assert failure["error"] == "TrustError" and "worker" in failure["msg"], failure
    policy = json.loads((Path(fleet.folders("node1")["rocket_local_config"]) / "policy.json").read_text())
    assert policy["scopes"] == wanted["rocket_trust_policy"]["scopes"] and policy["deny"] == []
    wanted["rocket_trust_policy"]["scopes"] = {f"{site.host}/worker": {"type": "nonsense"}}
    broken = fleet.play("deploy-pods.yml", fleet.inventory(wanted, {}), expect_ok=False)
    statuses = [r["status"] for r in broken.results if r["task"] == "Write the trust policy"]
    assert statuses == ["failed"]  # checked before it replaces the file
    assert json.loads((Path(fleet.folders("node1")["rocket_local_config"]) / "policy.json").read_text()) == policy


# -- trust-rollout.yml ------------------------------------------------------------------------------


def keys_of(fleet: Fleet, name: str) -> List[str]:
    folder = Path(fleet.folders(name)["rocket_local_config"]) / "trustedkeys" / "prefix.d" / fleet.site.host
    return sorted(p.name for p in folder.iterdir() if p.stat().st_size) if folder.exists() else []


def canaries(fleet: Fleet, site: Site) -> Dict[str, str]:
    made = {}
    for signer in ("successor", "publisher", "stranger"):
        tmp = fleet.root / f"canary-{signer}"
        tmp.mkdir()
        archive = busybox_image(tmp, f"{site.host}/canary", labels={"version": signer})
        Path(f"{archive}.asc").write_bytes(site.home.sign(site.keys[signer], archive))
        made[signer] = str(archive)
    return made


def rollout(fleet: Fleet, phase: str, canary: Dict[str, str], *args: str, new: str = "successor",
            expect_ok: bool = True) -> Run:  # fmt: skip
    site = fleet.site
    key_file = fleet.root / f"{new}.asc"
    key_file.write_bytes(site.home.export(site.keys[new]))
    extra = {
        "rocket_rollout_phase": phase,
        "rocket_rollout_prefix": site.host,
        "rocket_rollout_new_key": {"key_file": str(key_file), "fingerprints": [site.keys[new]]},
        "rocket_rollout_old_fingerprints": [site.keys["publisher"]],
        "rocket_rollout_canary_new": canary["successor"],
        "rocket_rollout_canary_old": canary["publisher"],
    }
    (fleet.root / "rollout.json").write_text(json.dumps(extra))
    return fleet.play(
        "playbooks/trust-rollout.yml",
        fleet.inventory({}, {}),
        "-e",
        f"@{fleet.root / 'rollout.json'}",
        *args,
        expect_ok=expect_ok,
    )


def test_rollout_rotates_a_key_in_canary_batches(fleet: Fleet, site: Site) -> None:
    fleet.names = ["node1", "node2", "node3", "node4"]
    fleet.play("deploy-pods.yml", fleet.inventory(deploy_vars(site, 1, pods=[]), {}))  # all trust the old key
    canary = canaries(fleet, site)
    old, new = site.keys["publisher"], site.keys["successor"]
    assert {name: keys_of(fleet, name) for name in fleet.names} == {name: [old] for name in fleet.names}

    before = {name: keys_of(fleet, name) for name in fleet.names}
    checked = rollout(fleet, "add", canary, "--check", "--diff")
    assert {name: keys_of(fleet, name) for name in fleet.names} == before and checked.returncode == 0

    added = rollout(fleet, "add", canary)
    assert {name: keys_of(fleet, name) for name in fleet.names} == {name: sorted([old, new]) for name in fleet.names}
    order = [r["host"] for r in added.results if r["task"] == "Probe - the canary signed by the new key verifies"]
    # Batches of 1, 1 (10 %) and 2 (50 %): node1's probe, then node2's, then those of node3 and node4 (in parallel).
    assert order[:2] == ["node1", "node2"] and sorted(order[2:]) == ["node3", "node4"]

    removed = rollout(fleet, "remove", canary)
    assert {name: keys_of(fleet, name) for name in fleet.names} == {name: [new] for name in fleet.names}
    refused = [r for r in removed.results if r["task"] == "Probe - the canary signed by the removed key is refused"]
    assert [r["status"] for r in refused] == ["ok"] * 4 and all(r["result"]["error"] == "TrustError" for r in refused)


def test_a_failing_canary_stops_the_rollout_at_the_first_host(fleet: Fleet, site: Site) -> None:
    fleet.names = ["node1", "node2", "node3"]
    fleet.play("deploy-pods.yml", fleet.inventory(deploy_vars(site, 1, pods=[]), {}))
    canary = canaries(fleet, site)
    canary["successor"] = canary["stranger"]  # the "new" canary is signed by a key nobody trusts
    run = rollout(fleet, "add", canary, expect_ok=False)
    assert run.returncode != 0
    assert {r["host"] for r in run.results} == {"node1"}  # the later batches never started
    old, new = site.keys["publisher"], site.keys["successor"]
    assert keys_of(fleet, "node1") == sorted([old, new])
    assert keys_of(fleet, "node2") == [old] and keys_of(fleet, "node3") == [old]
