"""Network logic without root: --net parsing, net.d files, host-local IPAM, DNS files, ports."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
from pathlib import Path
from typing import Any, Dict, List

import pytest

from rocket.cli.podflags import port_from_flag
from rocket.errors import NetworkError, UsageError
from rocket.lifecycle import port_forwards
from rocket.net import dns
from rocket.net.attach import host_interface_name
from rocket.net.config import DEFAULT_NETWORK, load_configs, parse_net_flag, resolve_requests, subnet_of
from rocket.net.ipam import HostLocal
from rocket.net.nftables import Forward


def write(folder: Path, name: str, conf: Any) -> Path:
    (folder / "net.d").mkdir(parents=True, exist_ok=True)
    path = folder / "net.d" / name
    path.write_text(conf if isinstance(conf, str) else json.dumps(conf))
    return path


def bridge(name: str, subnet: str = "10.20.0.0/24", **extra: Any) -> Dict[str, Any]:
    return {
        "name": name,
        "type": "bridge",
        "bridge": f"br-{name}"[:15],
        "ipam": {"type": "host-local", "subnet": subnet},
        **extra,
    }


# -- --net ------------------------------------------------------------------------------------------


def test_parse_net_flag() -> None:
    assert parse_net_flag("default") == [("default", {})]
    assert parse_net_flag("a,b:IP=10.1.2.3") == [("a", {}), ("b", {"IP": "10.1.2.3"})]
    assert parse_net_flag("a:IP=10.1.2.3;X=y") == [("a", {"IP": "10.1.2.3", "X": "y"})]


@pytest.mark.parametrize("value", ["", "a,,b", "a:IP", "a,a", "host,default", "none,a"])
def test_bad_net_flags(value: str) -> None:
    with pytest.raises(UsageError):
        parse_net_flag(value)


def test_modes_and_the_builtin_default(tmp_path: Path) -> None:
    assert resolve_requests("none", [tmp_path]) == ("none", [])
    assert resolve_requests("host", [tmp_path]) == ("host", [])
    mode, requests = resolve_requests("default", [tmp_path])
    assert mode == "pod" and requests[0].conf == DEFAULT_NETWORK and requests[0].builtin


def test_net_d_overrides_default_and_local_wins_over_system(tmp_path: Path) -> None:
    local, system = tmp_path / "local", tmp_path / "system"
    write(local, "10-default.conf", bridge("default", "10.30.0.0/24"))
    write(system, "10-default.conf", bridge("default", "10.31.0.0/24"))
    write(system, "20-extra.conf", bridge("extra", "10.32.0.0/24"))
    _mode, requests = resolve_requests("default,extra", [local, system])
    assert [r.conf["ipam"]["subnet"] for r in requests] == ["10.30.0.0/24", "10.32.0.0/24"]


def test_unknown_network_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "10-lab.conf", bridge("lab"))
    with pytest.raises(UsageError) as caught:
        resolve_requests("nosuch", [tmp_path])
    assert "default, lab" in caught.value.hint


def test_requested_address_must_be_in_the_range(tmp_path: Path) -> None:
    write(tmp_path, "10-lab.conf", bridge("lab", "10.20.0.0/24"))
    assert resolve_requests("lab:IP=10.20.0.9", [tmp_path])[1][0].args == {"IP": "10.20.0.9"}
    for address in ("10.20.1.9", "10.20.0.1", "not-an-ip"):
        with pytest.raises(UsageError):
            resolve_requests(f"lab:IP={address}", [tmp_path])


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ("{nope", "not JSON"),
        ("[]", "not a JSON object"),
        ({"name": "../x", "type": "bridge"}, "'name'"),
        ({"name": "host", "type": "bridge"}, "reserves"),
        ({"name": "a", "type": "../bin/sh"}, "'type'"),
        ({"name": "a", "type": "bridge", "bridge": "a-name-far-too-long"}, "'bridge'"),
        ({"name": "a", "type": "bridge"}, "host-local"),
        ({"name": "a", "type": "ptp", "ipam": {"type": "host-local", "subnet": "10.0.0.1/24"}}, "ipam.subnet"),
        ({"name": "a", "type": "ptp", "ipam": {"type": "host-local", "subnet": "10.0.0.0/31"}}, "too small"),
        ({"name": "a", "type": "ptp", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "gateway": "10.1.0.1"}},
         "outside the subnet"),
        ({"name": "a", "type": "ptp", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24", "routes": [{}]}},
         "ipam.routes[0]"),
        ({"name": "a", "type": "bridge", "mtu": 9, "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}, "'mtu'"),
    ],
)  # fmt: skip
def test_bad_configuration_files_are_named(tmp_path: Path, conf: Any, words: str) -> None:
    path = write(tmp_path, "50-bad.conf", conf)
    with pytest.raises(NetworkError) as caught:
        load_configs([tmp_path])
    assert str(path) in caught.value.message and words in caught.value.message


def test_a_name_defined_twice_in_one_folder(tmp_path: Path) -> None:
    write(tmp_path, "10-a.conf", bridge("lab"))
    write(tmp_path, "20-b.conf", bridge("lab"))
    with pytest.raises(NetworkError, match="defined twice"):
        load_configs([tmp_path])


def test_plugin_types_are_not_checked_beyond_name_and_type(tmp_path: Path) -> None:
    write(tmp_path, "10-mac.conf", {"name": "mac", "type": "macvlan", "master": "eth9"})
    assert load_configs([tmp_path])["mac"][0]["master"] == "eth9"


def test_cni_ranges_format(tmp_path: Path) -> None:
    conf = {"name": "r", "type": "bridge", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/16",
            "rangeStart": "10.9.1.10", "rangeEnd": "10.9.1.20"}]]}}  # fmt: skip
    subnet = subnet_of(conf)
    assert (str(subnet.first), str(subnet.last), str(subnet.gateway)) == ("10.9.1.10", "10.9.1.20", "10.9.0.1")


# -- host-local IPAM --------------------------------------------------------------------------------


def small(tmp_path: Path, subnet: str = "10.40.0.0/29") -> HostLocal:
    return HostLocal(tmp_path, "small", subnet_of(bridge("small", subnet)))


def test_allocation_skips_the_gateway_and_goes_round(tmp_path: Path) -> None:
    ipam = small(tmp_path)
    first = [str(ipam.allocate(f"pod{i}", "eth0")) for i in range(5)]
    assert first == ["10.40.0.2", "10.40.0.3", "10.40.0.4", "10.40.0.5", "10.40.0.6"]
    with pytest.raises(NetworkError, match="every address"):
        ipam.allocate("pod5", "eth0")
    assert ipam.release("pod1") == ["10.40.0.3"]
    assert str(ipam.allocate("pod6", "eth0")) == "10.40.0.3"
    ipam.release("pod2")
    ipam.release("pod4")
    assert str(ipam.allocate("pod7", "eth0")) == "10.40.0.4"  # after the last one given, not the lowest free
    assert ipam.leases() == ["10.40.0.2", "10.40.0.3", "10.40.0.4", "10.40.0.5"]


def test_a_requested_address_is_given_once(tmp_path: Path) -> None:
    ipam = small(tmp_path)
    assert str(ipam.allocate("a", "eth0", "10.40.0.5")) == "10.40.0.5"
    with pytest.raises(NetworkError, match="already leased to pod a"):
        ipam.allocate("b", "eth0", "10.40.0.5")


def _allocate(args: List[str]) -> str:
    folder, owner = args
    return str(small(Path(folder), "10.41.0.0/24").allocate(owner, "eth0"))


def test_concurrent_processes_get_distinct_addresses(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(8) as pool:
        got = pool.map(_allocate, [[str(tmp_path), f"pod{i}"] for i in range(40)])
    assert len(set(got)) == 40


# -- DNS and hosts ----------------------------------------------------------------------------------


def test_dns_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.test\n")
    monkeypatch.setattr(dns, "HOST_RESOLV_CONF", str(host))
    default = dns.DnsOptions()
    assert dns.resolv_conf(default, network="pod") == "nameserver 192.0.2.1\nsearch corp.test\n"
    assert dns.resolv_conf(default, network="host") == host.read_text()
    assert dns.resolv_conf(default, network="none") is None
    custom = dns.options_from_flags(["192.0.2.9"], ["a.test"], ["ndots:2"], "d.test", [])
    assert dns.resolv_conf(custom, network="none") == (
        "# written by rocket for this pod\ndomain d.test\nsearch a.test\nnameserver 192.0.2.9\noptions ndots:2\n"
    )
    assert dns.resolv_conf(dns.options_from_flags(["none"], [], [], "", []), network="pod") is None
    assert dns.resolv_conf(default, network="pod", cni_dns={"nameservers": ["192.0.2.7"]}) is not None


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ((["host", "192.0.2.1"], [], [], "", []), "cannot be combined"),
        ((["nonsense"], [], [], "", []), "not an IP address"),
        ((["none"], ["x.test"], [], "", []), "do not apply"),
        (([], [], [], "", ["db.test"]), "not an IP address"),
        (([], [], [], "", ["10.0.0.1="]), "one host name"),
        (([], [], [], "", ["10.0.0.1=a b"]), "one host name"),
    ],
)
def test_bad_dns_flags(flags: Any, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        dns.options_from_flags(*flags)


def test_hosts_file() -> None:
    options = dns.options_from_flags([], [], [], "", ["10.9.9.9=db.test"])
    text = dns.hosts_file(options, hostname="rocket-x", addresses=["172.16.28.5"])
    assert text.splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "172.16.28.5\trocket-x",
        "10.9.9.9\tdb.test",
    ]


# -- ports ------------------------------------------------------------------------------------------


def test_port_flag() -> None:
    assert port_from_flag("http:8080") == {"name": "http", "hostPort": 8080}
    assert port_from_flag("http:127.0.0.1:8080") == {"name": "http", "hostPort": 8080, "hostIP": "127.0.0.1"}
    for bad in ("http", "http:0", "http:x", ":80", "http:300.1.1.1:80", "a:b:c:d"):
        with pytest.raises(UsageError):
            port_from_flag(bad)


def test_port_forwards_follow_the_apps_ports() -> None:
    manifest = {
        "apps": [{"name": "web", "image": {"id": "x"}}],
        "ports": [{"name": "http", "hostPort": 8080}, {"name": "dns", "hostPort": 5353, "hostIP": "127.0.0.1"}],
    }
    apps = {"web": {"ports": [{"name": "http", "protocol": "tcp", "port": 80}, {"name": "dns", "protocol": "udp",
            "port": 53, "count": 2}]}}  # fmt: skip
    assert port_forwards(manifest, apps) == [
        {"name": "http", "protocol": "tcp", "host_ip": "", "host_port": 8080, "pod_port": 80},
        {"name": "dns", "protocol": "udp", "host_ip": "127.0.0.1", "host_port": 5353, "pod_port": 53},
        {"name": "dns", "protocol": "udp", "host_ip": "127.0.0.1", "host_port": 5354, "pod_port": 54},
    ]
    manifest["ports"] = [{"name": "nosuch", "hostPort": 1}]
    with pytest.raises(UsageError, match="no app of the pod declares"):
        port_forwards(manifest, apps)


def test_forward_rule_and_interface_names() -> None:
    assert Forward("tcp", 8080, "172.16.28.5", 80).rule() == "tcp dport 8080 dnat to 172.16.28.5:80"
    assert Forward("udp", 53, "10.0.0.2", 53, host_ip="127.0.0.1").rule() == (
        "ip daddr 127.0.0.1 udp dport 53 dnat to 10.0.0.2:53"
    )
    with pytest.raises(ValueError):
        Forward("tcp", 1, "10.0.0.2", 1, host_ip="127.0.0.1; drop").rule()
    names = {host_interface_name(f"uuid-{i}", "eth0") for i in range(1000)}
    assert len(names) == 1000 and all(len(name) <= 15 for name in names)
    assert ipaddress.IPv4Address("172.16.28.1") in ipaddress.IPv4Network(DEFAULT_NETWORK["ipam"]["subnet"])
