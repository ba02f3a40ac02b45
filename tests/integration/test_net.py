"""Pod networks for real: the default bridge, none, host, custom bridge and ptp networks, a CNI plugin,
forwarded ports, DNS and hosts files, concurrency, and teardown that leaves nothing behind.

Traffic goes only between the host and the bridges, veths and namespaces these tests make (rocket0,
test bridges, a dummy interface), or to 127.0.0.1.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from pods import BUSYBOX, Rocket, busybox_image

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="pod networks need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static"),
    pytest.mark.skipif(not Path("/usr/sbin/nft").exists(), reason="needs nftables"),
]

WEB = "example.com/web"
METADATA = 'wget -q -O - --header "Metadata-Flavor: AppContainer"'
SERVE = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def interfaces() -> List[str]:
    return sorted(line.split(":")[1].strip().split("@")[0] for line in _run("ip", "-o", "link").splitlines())


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def nft_rules() -> List[str]:
    """Every rule and chain of rocket's table, one per line (empty if the table does not exist)."""
    result = subprocess.run(["nft", "list", "table", "ip", "rocket"], capture_output=True, text=True, check=False)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []


def leases(data: Path) -> List[str]:
    folder = data / "networks"
    if not folder.is_dir():
        return []
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and path.name not in ("lock", "last_reserved") and not path.name.startswith("last_reserved")
    )


def mounts(data: Path) -> List[str]:
    """Mounts of rocket's: under the data directory, or of a network namespace (other programs on the
    machine may mount and unmount their own things meanwhile)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(str(data)) or point.startswith("/run/netns") or "rocket" in point:
            found.append(point)
    return sorted(found)


def snapshot(data: Path) -> Dict[str, Any]:
    return {
        "interfaces": [name for name in interfaces() if name.startswith("veth")],
        "rules": [line for line in nft_rules() if "pod-" in line],
        "leases": leases(data),
        "mounts": mounts(data),
        "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        "chains": sorted(line for line in nft_rules() if line.startswith("chain pod-")),
    }


def settles_to(data: Path, wanted: Dict[str, Any], timeout: float = 10.0) -> Dict[str, Any]:
    """The snapshot once it equals `wanted` twice in a row, or the last one after `timeout` seconds: the
    kernel removes a veth when the last process of its namespace is gone, a moment after the supervisor
    exits, and a link dump taken while it deletes links may miss some that are still there."""
    deadline = time.monotonic() + timeout
    previous, current = None, snapshot(data)
    while (current != wanted or previous != wanted) and time.monotonic() < deadline:
        time.sleep(0.05)
        previous, current = current, snapshot(data)
    return current


def quiet_snapshot(data: Path) -> Dict[str, Any]:
    """The snapshot once the veths of earlier tests' pods are gone (or after 5 s, if the host has others)."""
    return settles_to(data, dict(snapshot(data), interfaces=[]), timeout=5.0)


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return str(answer.read().decode())


def wait_for(url: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(url, timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def rocket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rocket]:
    tmp = tmp_path_factory.mktemp("net")
    cli = Rocket(tmp / "data")
    cli.config = tmp / "etc"  # type: ignore[attr-defined]
    (tmp / "etc" / "net.d").mkdir(parents=True)
    cli("fetch", str(busybox_image(tmp)))
    web = busybox_image(
        tmp,
        WEB,
        app={
            "exec": ["/bin/sh", "-c", SERVE],
            "user": "0",
            "group": "0",
            "ports": [{"name": "http", "protocol": "tcp", "port": 80}],
        },
    )
    cli("fetch", str(web))
    yield cli
    for pod in json.loads(cli("list", "--format=json").stdout):
        if pod["state"] == "running":
            cli("stop", "--force", pod["uuid"], check=False)
    cli("gc", "--grace-period=0s", check=False)


def run(rocket: Rocket, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return rocket("--local-config", str(rocket.config), "run", *args, **kwargs)  # type: ignore[attr-defined]


def detach(rocket: Rocket, *args: str) -> str:
    return str(run(rocket, "--detach", *args).stdout.strip().splitlines()[-1])


def address_of(rocket: Rocket, uuid: str, network: str = "default") -> str:
    status = rocket.status(uuid)
    return str(next(n["address"] for n in status["networks"] if n["name"] == network).split("/")[0])


def sh(rocket: Rocket, script: str, *flags: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return run(rocket, *flags, "example.com/busybox", "--exec", "/bin/sh", "--", "-c", script, **kwargs)


# -- the modes --------------------------------------------------------------------------------------


def test_default_network_joins_rocket0_and_reaches_another_pod(rocket: Rocket) -> None:
    server = detach(rocket, WEB)
    try:
        address = address_of(rocket, server)
        assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network("172.16.28.0/24")
        out = sh(rocket, f"ip -o -4 addr show eth0; ip route; wget -q -O - http://{address}/").stdout
        assert "inet 172.16.28." in out and "default via 172.16.28.1 dev eth0" in out
        assert f"hello-from-rocket-{server}" in out
        status = rocket.status(server)
        assert status["networks"][0]["ifname"] == "eth0" and status["networks"][0]["gateway"] == "172.16.28.1"
        listing = rocket("list").stdout
        assert f"default:{address}" in listing
        assert "network_check=ok" in rocket("status", "--check-network", server).stdout
        assert f"networks=default:eth0:{address}/24" in rocket("status", server).stdout
    finally:
        rocket("stop", server)
    assert rocket.status(server)["networks"] == []  # released at stop


def test_none_has_only_loopback(rocket: Rocket) -> None:
    out = sh(rocket, "ip -o link", "--net=none").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]


def test_host_shares_the_hosts_interfaces(rocket: Rocket) -> None:
    out = sh(rocket, "ip -o link", "--net=host").stdout
    inside = sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
    assert inside == interfaces()


def test_metadata_service_on_every_network_mode(rocket: Rocket) -> None:
    for net in ("default", "none", "host"):
        out = sh(rocket, f"{METADATA} $AC_METADATA_URL/acMetadata/v1/pod/uuid", f"--net={net}").stdout
        assert len(out.strip()) == 36, (net, out)


def test_two_host_network_pods_each_get_a_metadata_service(rocket: Rocket) -> None:
    first = detach(rocket, "--net=host", "example.com/busybox", "--exec", "/bin/sleep", "--", "60")
    try:
        out = sh(rocket, f"{METADATA} $AC_METADATA_URL/acMetadata/v1/pod/uuid", "--net=host").stdout
        assert len(out.strip()) == 36 and out.strip() != first
    finally:
        rocket("stop", first)


# -- ports ------------------------------------------------------------------------------------------


def test_forwarded_port_on_localhost_and_on_a_host_address(rocket: Rocket) -> None:
    port = free_port()
    uuid = detach(rocket, f"--port=http:{port}", WEB)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/").strip() == f"hello-from-rocket-{uuid}"
        # The host's address on rocket0 is one of the host's own: the forward answers there too.
        assert wait_for(f"http://172.16.28.1:{port}/").strip() == f"hello-from-rocket-{uuid}"
        assert any(f"dport {port}" in line for line in nft_rules())
        assert rocket.status(uuid)["ports"][0]["host_port"] == port
    finally:
        rocket("stop", uuid)
    assert not any(f"dport {port}" in line for line in nft_rules())
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}/", timeout=1)


def test_forward_bound_to_one_host_address(rocket: Rocket) -> None:
    port = free_port()
    uuid = detach(rocket, f"--port=http:127.0.0.1:{port}", WEB)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/").strip() == f"hello-from-rocket-{uuid}"
        with pytest.raises(OSError):
            http_get(f"http://172.16.28.1:{port}/", timeout=1)
    finally:
        rocket("stop", uuid)


def test_a_host_port_is_forwarded_to_one_pod_only(rocket: Rocket) -> None:
    port = free_port()
    uuid = detach(rocket, f"--port=http:{port}", WEB)
    try:
        before = leases(rocket.data)
        result = run(rocket, "--detach", f"--port=http:{port}", WEB, check=False)
        assert result.returncode == 254 and "already forwarded" in result.stderr
        assert leases(rocket.data) == before  # the refused pod gave its address back
    finally:
        rocket("stop", uuid)


def test_port_errors_are_clear(rocket: Rocket) -> None:
    for flags, words in (
        (["--port=nosuch:8080"], "no app of the pod declares"),
        (["--port=http:99999"], "not a port number"),
        (["--net=none", "--port=http:8080"], "cannot be forwarded"),
    ):
        result = run(rocket, *flags, WEB, check=False)
        assert result.returncode == 254 and words in result.stderr, (flags, result.stderr)


# -- custom networks --------------------------------------------------------------------------------


@pytest.fixture()
def net_d(rocket: Rocket) -> Iterator[Path]:
    folder = rocket.config / "net.d"  # type: ignore[attr-defined]
    yield folder
    for path in folder.glob("*.conf"):
        path.unlink()


def write_conf(folder: Path, file: str, conf: Dict[str, Any]) -> None:
    (folder / file).write_text(json.dumps(conf))


def test_custom_bridge_network_with_its_own_subnet_and_a_requested_address(rocket: Rocket, net_d: Path) -> None:
    write_conf(
        net_d,
        "10-lab.conf",
        {
            "cniVersion": "1.0.0",
            "name": "lab",
            "type": "bridge",
            "bridge": "rkt-lab0",
            "isGateway": True,
            "ipMasq": False,
            "ipam": {"type": "host-local", "subnet": "10.213.0.0/24", "routes": [{"dst": "10.214.0.0/16"}]},
        },
    )
    try:
        out = sh(rocket, "ip -o -4 addr; ip route", "--net=default,lab:IP=10.213.0.77").stdout
        assert "eth0    inet 172.16.28." in out and "eth1    inet 10.213.0.77/24" in out
        assert "10.214.0.0/16 via 10.213.0.1 dev eth1" in out
        result = sh(rocket, "true", "--net=lab:IP=10.213.0.1", check=False)
        assert result.returncode == 254 and "not an address network lab gives out" in result.stderr
        result = sh(rocket, "true", "--net=nosuch", check=False)
        assert result.returncode == 254 and "no network named 'nosuch'" in result.stderr and "lab" in result.stderr
    finally:
        subprocess.run(["ip", "link", "del", "rkt-lab0"], check=False)


def test_ptp_network(rocket: Rocket, net_d: Path) -> None:
    write_conf(
        net_d,
        "20-p2p.conf",
        {"name": "p2p", "type": "ptp", "ipMasq": False, "ipam": {"type": "host-local", "subnet": "10.215.0.0/24"}},
    )
    uuid = detach(rocket, "--net=p2p", WEB)
    try:
        address = address_of(rocket, uuid, "p2p")
        assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network("10.215.0.0/24")
        assert wait_for(f"http://{address}/").strip() == f"hello-from-rocket-{uuid}"  # host -> pod, routed
    finally:
        rocket("stop", uuid)


def test_a_type_that_is_not_built_in_runs_the_cni_plugin(rocket: Rocket, net_d: Path) -> None:
    """macvlan is Debian's CNI plugin (with CNI's own host-local); its master is one end of a veth of ours."""
    if not Path("/usr/lib/cni/macvlan").exists():
        pytest.skip("needs containernetworking-plugins")
    subprocess.run(["ip", "link", "del", "rkt-mv0"], capture_output=True, check=False)  # a failed run's
    subprocess.run(["ip", "link", "add", "rkt-mv0", "type", "veth", "peer", "name", "rkt-mv1"], check=True)
    subprocess.run(["ip", "link", "set", "rkt-mv0", "up"], check=True)
    try:
        write_conf(
            net_d,
            "30-mac.conf",
            {
                "cniVersion": "1.0.0",
                "name": "mac",
                "type": "macvlan",
                "master": "rkt-mv0",
                "mode": "bridge",
                "ipam": {"type": "host-local", "subnet": "10.216.0.0/24"},
            },
        )
        uuid = detach(rocket, "--net=mac:IP=10.216.0.42", "example.com/busybox", "--exec", "/bin/sleep", "--", "60")
        try:
            assert address_of(rocket, uuid, "mac") == "10.216.0.42"
            out = rocket("enter", uuid, "/bin/ip", "-o", "-4", "addr", "show", "eth0").stdout
            assert "10.216.0.42/24" in out
            cni_leases = rocket.data / "networks" / "mac" / "cni" / "mac"
            assert (cni_leases / "10.216.0.42").exists()  # CNI's host-local kept its lease under --dir
            assert "network_check=ok" in rocket("status", "--check-network", uuid).stdout  # CNI CHECK
            supervisor = rocket.status(uuid)["pid"]
            subprocess.run(["nsenter", f"--net=/proc/{supervisor}/ns/net", "ip", "addr", "flush", "dev", "eth0"])
            broken = rocket("status", "--check-network", uuid, check=False)
            assert broken.returncode == 254 and "CNI plugin macvlan failed CHECK" in broken.stderr
        finally:
            rocket("stop", uuid)
        assert not (cni_leases / "10.216.0.42").exists()  # DEL gave it back
    finally:
        subprocess.run(["ip", "link", "del", "rkt-mv0"], check=False)


def test_a_broken_network_file_is_named(rocket: Rocket, net_d: Path) -> None:
    (net_d / "40-bad.conf").write_text("{not json")
    result = sh(rocket, "true", check=False)
    assert result.returncode == 254 and "40-bad.conf" in result.stderr and "Traceback" not in result.stderr


# -- DNS and names ----------------------------------------------------------------------------------


def test_dns_flags_write_resolv_conf(rocket: Rocket) -> None:
    out = sh(
        rocket,
        "cat /etc/resolv.conf",
        "--dns=192.0.2.53",
        "--dns-search=lab.test",
        "--dns-opt=ndots:2",
        "--dns-domain=pods.test",
    ).stdout
    assert "nameserver 192.0.2.53" in out and "search lab.test" in out
    assert "options ndots:2" in out and "domain pods.test" in out


def test_dns_host_none_and_default(rocket: Rocket) -> None:
    host = Path("/etc/resolv.conf").read_text()
    assert sh(rocket, "cat /etc/resolv.conf", "--dns=host").stdout == host
    # none keeps the image's own file, which here does not exist
    assert sh(rocket, "cat /etc/resolv.conf", "--dns=none", check=False).returncode != 0
    default = sh(rocket, "cat /etc/resolv.conf").stdout
    assert "127.0.0" not in default  # a loopback resolver of the host is unreachable from the pod


def test_hosts_entries_and_hostname(rocket: Rocket, tmp_path: Path) -> None:
    uuid_file = tmp_path / "uuid"
    out = sh(
        rocket, "hostname; cat /etc/hosts", "--hosts-entry=10.9.9.9=db.test", "--uuid-file-save", str(uuid_file)
    ).stdout
    uuid = uuid_file.read_text().strip()
    assert out.splitlines()[0] == f"rocket-{uuid}"
    assert "10.9.9.9\tdb.test" in out and "127.0.0.1\tlocalhost" in out
    assert any(line.startswith("172.16.28.") and line.endswith(f"rocket-{uuid}") for line in out.splitlines())
    host = sh(rocket, "cat /etc/hosts", "--hosts-entry=host").stdout
    assert host.startswith(Path("/etc/hosts").read_text())


# -- scale and teardown -----------------------------------------------------------------------------


def test_twenty_concurrent_starts_get_distinct_addresses(rocket: Rocket) -> None:
    before = quiet_snapshot(rocket.data)
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        uuids = list(
            pool.map(lambda _: detach(rocket, "example.com/busybox", "--exec", "/bin/sleep", "--", "120"), range(20))
        )
    try:
        addresses = [address_of(rocket, uuid) for uuid in uuids]
        assert len(set(addresses)) == 20
        assert len(leases(rocket.data)) == len(before["leases"]) + 20
    finally:
        rocket("stop", *uuids)
    assert settles_to(rocket.data, before) == before


def test_killed_supervisor_then_gc_leaves_nothing(rocket: Rocket) -> None:
    before = quiet_snapshot(rocket.data)
    uuid = detach(rocket, f"--port=http:{free_port()}", WEB)
    assert snapshot(rocket.data) != before
    supervisor = json.loads((rocket.data / "pods" / "run" / uuid / "supervisor").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while rocket.status(uuid)["state"] != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
    rocket("gc", "--grace-period=0s")
    assert settles_to(rocket.data, before) == before


def test_stop_force_releases_the_network(rocket: Rocket) -> None:
    before = quiet_snapshot(rocket.data)
    uuid = detach(rocket, f"--port=http:{free_port()}", WEB)
    rocket("stop", "--force", uuid)
    assert settles_to(rocket.data, before) == before


@pytest.mark.slow
def test_two_hundred_start_stop_cycles_leave_nothing(rocket: Rocket) -> None:
    before = quiet_snapshot(rocket.data)
    port_base = free_port()

    def cycle(number: int) -> str:
        flags = [f"--port=http:{port_base + number}"] if number % 2 else []
        # Half of them forward a port (nftables), every one leases, wires a veth and tears it down.
        result = run(rocket, *flags, WEB, "--exec", "/bin/true", check=False)
        return "0" if result.returncode == 0 else f"{result.returncode} {result.stdout[-300:]} {result.stderr}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(cycle, range(200)))
    assert [outcome for outcome in outcomes if outcome != "0"] == []
    rocket("gc", "--grace-period=0s")
    assert settles_to(rocket.data, before) == before
    assert not [name for name in interfaces() if name.startswith("veth")]
