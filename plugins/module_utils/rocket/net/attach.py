"""One pod's networks, from set-up in its supervisor to teardown (by the supervisor, or by stop and gc).

The supervisor calls, in order:
    host_side()    before it unshares its network namespace: bridges, sysctls, leases, claimed host
                   ports, rocket's nftables table; it keeps a netlink socket and a descriptor of the host's
                   namespace, which stay valid afterwards
    pod_side()     inside the pod's new namespace, before any app runs: a veth per built-in network
                   (`ethN` inside, `veth<hash>` on the host), addresses, routes; CNI plugins for the other
                   types (CNI_NETNS is the supervisor's own /proc/PID/ns/net); the DNAT rules of the
                   pod's ports; `net.json` and the pod's `hosts` and `resolv.conf`
    teardown()     when the pod has ended: links, CNI DEL, the pod's nftables chain, leases, ports
A supervisor killed before its teardown leaves only files and rules behind (its links die with its
namespace); `release()` removes them for `stop --force`, `rm` and `gc`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import NetworkError, RocketError
from ..fileio import atomic_write
from ..locks import FileLock
from ..paths import network_leases_dir
from ..pod import PodFiles
from .dns import DnsOptions, hosts_file, resolv_conf

# The modules for real networks (CNI, nftables, addresses, leases) are imported where a pod has
# networks: a pod on `--net=none` or `host` starts without them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path

if TYPE_CHECKING:
    from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional

    from . import nftables
    from .config import NetworkRequest

CLONE_NEWNET = 0x40000000
PORTS = "ports"  # the claims on host ports live in <dir>/networks/ports/


def host_interface_name(uuid: str, ifname: str) -> str:
    """The host end of a pod's veth: stable for the pod and interface, at most 15 characters."""
    import hashlib

    return "veth" + hashlib.sha256(f"{uuid}/{ifname}".encode()).hexdigest()[:8]


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path) as stream:
            if stream.read().strip() == value:
                return
        with open(path, "w") as stream:
            stream.write(value)
    except OSError as exc:
        raise NetworkError(f"cannot set {path} to {value}: {exc.strerror}") from exc


class PortClaims:
    """Which pod forwards which host port: one file per claim, so two pods never take the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = network_leases_dir(data_dir, PORTS)

    def _locked(self) -> FileLock:
        """The flock that serialises changes to this folder (the kernel drops it if the process dies)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FileLock(self.folder / "lock")

    def claim(self, owner: str, forwards: List[Dict[str, Any]]) -> None:
        with self._locked():
            taken = {}
            for path in self.folder.iterdir():
                if path.name != "lock":
                    try:
                        taken[path.name] = path.read_text().strip()
                    except OSError:
                        pass
            mine: List[str] = []
            for forward in forwards:
                protocol, port, host_ip = (
                    forward["protocol"],
                    int(forward["host_port"]),
                    forward.get("host_ip") or "any",
                )
                for key, holder in taken.items():
                    other_protocol, other_port, other_ip = key.split("-", 2)
                    clash = other_ip == "any" or host_ip == "any" or other_ip == host_ip
                    if other_protocol == protocol and int(other_port) == port and clash and holder != owner:
                        for name in mine:
                            (self.folder / name).unlink(missing_ok=True)
                        raise NetworkError(
                            f"host port {protocol}/{port} is already forwarded to pod {holder}",
                            hint="choose another host port, or stop that pod",
                        )
                key = f"{protocol}-{port}-{host_ip}"
                (self.folder / key).write_text(owner + "\n")
                taken[key] = owner
                mine.append(key)

    def release(self, owner: str) -> None:
        if not self.folder.is_dir():
            return
        with self._locked():
            for path in self.folder.iterdir():
                if path.name == "lock":
                    continue
                try:
                    if path.read_text().strip() == owner:
                        path.unlink()
                except OSError:
                    pass


class PodNetwork:
    """The networks of one pod, as its runtime.json describes them."""

    def __init__(self, files: PodFiles, uuid: str, data_dir: Path, runtime: Dict[str, Any]) -> None:
        self.files = files
        self.uuid = uuid
        self.data_dir = data_dir
        self.mode = str(runtime.get("net_mode") or ("host" if runtime.get("net") == "host" else "none"))
        self.requests: List[NetworkRequest] = []
        if runtime.get("networks"):
            from .config import NetworkRequest

            self.requests = [NetworkRequest.from_json(item) for item in runtime["networks"]]
        self.ports: List[Dict[str, Any]] = list(runtime.get("ports") or [])
        self.dns = DnsOptions.from_json(runtime.get("dns"))
        self.hostname = str(runtime.get("hostname") or f"rocket-{uuid}")
        self.host_ns_fd: Optional[int] = None
        self.host_link: Any = None
        self.bridges: Dict[str, int] = {}
        self.leases: Dict[str, str] = {}
        self.table: Optional[nftables.Transaction] = None
        self.record: Dict[str, Any] = {"mode": self.mode, "networks": [], "ports": [], "released": False}
        self.warnings: List[str] = []

    # -- in the host's namespace -----------------------------------------------------------------

    def in_host_namespace(self) -> None:
        """preexec_fn for the programs the pod's supervisor runs on the host's behalf (nft, CNI plugins)."""
        from ..stage1 import linux

        if self.host_ns_fd is not None:
            linux.setns(self.host_ns_fd, CLONE_NEWNET)

    def in_host(self) -> ContextManager[None]:
        """Run a block in the host's network namespace, and come back to the pod's."""
        import contextlib  # only pods with networks of their own come here

        from ..stage1 import linux

        @contextlib.contextmanager
        def switched() -> Iterator[None]:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if self.host_ns_fd is not None:
                    linux.setns(self.host_ns_fd, CLONE_NEWNET)
                yield
            finally:
                linux.setns(own, CLONE_NEWNET)
                os.close(own)

        return switched()

    def host_side(self) -> None:
        """Everything outside the pod's namespace that must exist before it has interfaces."""
        if self.mode != "pod":
            return
        from . import nftables
        from .config import subnet_of
        from .ipam import HostLocal
        from .rtnl import Netlink

        self._save()  # from now on release() knows there may be leases, ports and rules to give back
        self.host_ns_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.host_link = Netlink()
        masquerade: List[str] = []
        forwarding = False
        for index, request in enumerate(self.requests):
            if not request.builtin:
                continue
            conf = request.conf
            subnet = subnet_of(conf)
            if conf.get("ipMasq"):
                masquerade.append(str(subnet.network))
            if conf["type"] == "bridge":
                self._bridge(conf, subnet)
                forwarding = forwarding or bool(conf.get("isGateway") or conf.get("ipMasq"))
            else:
                forwarding = True  # ptp: the host routes between the pod and the rest
            address = HostLocal(self.data_dir, request.name, subnet).allocate(
                self.uuid, f"eth{index}", request.args.get("IP")
            )
            self.leases[request.name] = str(address)
        if forwarding:
            _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        if self.ports:
            PortClaims(self.data_dir).claim(self.uuid, self.ports)
        if masquerade or self.ports:
            self.table = nftables.ensure_base(masquerade)

    def _bridge(self, conf: Dict[str, Any], subnet: Any) -> None:
        name = str(conf.get("bridge") or "cni0")
        if name in self.bridges:
            return
        link = self.host_link
        index = link.add_bridge(name, mtu=conf.get("mtu"))
        if conf.get("isGateway"):
            import ipaddress

            gateway = ipaddress.IPv4Interface(f"{subnet.gateway}/{subnet.network.prefixlen}")
            link.add_address(index, gateway, exist_ok=True)
        link.set_up(index)
        # Connections the host makes to a forwarded port on 127.0.0.1 leave through the bridge.
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
        self.bridges[name] = index

    # -- in the pod's namespace ------------------------------------------------------------------

    def pod_side(self) -> None:
        """Interfaces, addresses and routes in the pod's namespace (current now), then ports and files."""
        if self.mode == "pod":
            from .rtnl import Netlink

            with Netlink() as link:
                for index, request in enumerate(self.requests):
                    ifname = f"eth{index}"
                    entry = self._builtin(link, request, ifname) if request.builtin else self._plugin(request, ifname)
                    self.record["networks"].append(entry)
                    self._save()
            table, self.table = self.table, None
            if table is not None:
                table.wait()
            self._forward_ports()
        self._save()
        self.write_etc()

    def _builtin(self, link: Any, request: NetworkRequest, ifname: str) -> Dict[str, Any]:
        import ipaddress

        from .config import subnet_of

        conf = request.conf
        subnet = subnet_of(conf)
        address = ipaddress.IPv4Address(self.leases[request.name])
        host_name = host_interface_name(self.uuid, ifname)
        entry = {
            "name": request.name,
            "type": conf["type"],
            "ifname": ifname,
            "host_interface": host_name,
            "address": f"{address}/{subnet.network.prefixlen}",
            "gateway": str(subnet.gateway),
        }
        if self.host_ns_fd is None:
            raise AssertionError("bug: pod_side before host_side")
        index = link.add_veth(ifname, host_name, peer_namespace_fd=self.host_ns_fd, mtu=conf.get("mtu"))
        host = self.host_link
        host_index = host.link_index(host_name)
        if host_index is None:
            raise NetworkError(f"network {request.name}: the host end {host_name} of {ifname} is missing")
        routes = list(subnet.routes)
        default = ipaddress.IPv4Network("0.0.0.0/0")
        if conf["type"] == "bridge":
            host.set_master(host_index, self.bridges[str(conf.get("bridge") or "cni0")])
            host.set_up(host_index)
            link.add_address(index, ipaddress.IPv4Interface(f"{address}/{subnet.network.prefixlen}"))
            link.set_up(index)
            if conf.get("isDefaultGateway") and all(route != default for route, _via in routes):
                routes.append((default, None))
        else:  # ptp: a /32 each side, a route to the pod on the host, the gateway on-link in the pod
            entry["address"] = f"{address}/32"
            host.add_address(host_index, ipaddress.IPv4Interface(f"{subnet.gateway}/32"), exist_ok=True)
            host.set_up(host_index)
            with self.in_host():  # /proc/sys/net shows the namespace of whoever opens it
                _write_sysctl(f"/proc/sys/net/ipv4/conf/{host_name}/route_localnet", "1")
            host.add_route(ipaddress.IPv4Network(f"{address}/32"), oif=host_index, exist_ok=True)
            link.add_address(index, ipaddress.IPv4Interface(f"{address}/32"))
            link.set_up(index)
            link.add_route(ipaddress.IPv4Network(f"{subnet.gateway}/32"), oif=index)
            if not routes:
                routes.append((default, None))
        for destination, via in routes:
            link.add_route(destination, gateway=via or subnet.gateway, exist_ok=True)
        return entry

    def _plugin(self, request: NetworkRequest, ifname: str) -> Dict[str, Any]:
        from . import cni

        conf = cni.plugin_conf(request.conf, self.data_dir)
        entry: Dict[str, Any] = {"name": request.name, "type": conf["type"], "ifname": ifname, "conf": conf}
        result = cni.invoke(
            "ADD",
            conf,
            container_id=self.uuid,
            netns=f"/proc/{os.getpid()}/ns/net",
            ifname=ifname,
            args=request.args,
            preexec=self.in_host_namespace,
        )
        entry["result"] = result
        found = cni.addresses(result)
        entry["address"] = found[0]["address"] if found else ""
        entry["gateway"] = found[0]["gateway"] if found else ""
        return entry

    def _forward_ports(self) -> None:
        if not self.ports:
            return
        from . import nftables

        target = next((n["address"].split("/")[0] for n in self.record["networks"] if n.get("address")), None)
        if target is None:
            raise NetworkError("the pod's ports cannot be forwarded: none of its networks gave it an address")
        forwards = [
            nftables.Forward(
                protocol=p["protocol"],
                host_port=int(p["host_port"]),
                pod_address=target,
                pod_port=int(p["pod_port"]),
                host_ip=p.get("host_ip") or "",
            )
            for p in self.ports
        ]
        nftables.add_forwards(self.uuid, forwards, preexec=self.in_host_namespace)
        self.record["ports"] = [dict(p, pod_address=target) for p in self.ports]

    def addresses(self) -> List[str]:
        return [n["address"].split("/")[0] for n in self.record["networks"] if n.get("address")]

    def write_etc(self) -> None:
        """The pod's hosts and resolv.conf, for the apps to bind (plan.py decides which)."""
        folder = self.files.etc
        folder.mkdir(exist_ok=True)
        atomic_write(
            folder / "hosts",
            hosts_file(self.dns, hostname=self.hostname, addresses=self.addresses()).encode(),
            durable=False,
        )
        cni_dns = next((n["result"].get("dns") for n in self.record["networks"] if n.get("result")), None)
        text = resolv_conf(self.dns, network=self.mode, cni_dns=cni_dns if isinstance(cni_dns, dict) else None)
        if text is not None:
            atomic_write(folder / "resolv.conf", text.encode(), durable=False)

    def _save(self) -> None:
        atomic_write(self.files.network, json.dumps(self.record, indent=2, sort_keys=True).encode(), durable=False)

    # -- the end ---------------------------------------------------------------------------------

    def teardown(self) -> List[str]:
        """Undo everything (from the supervisor, still in the pod's namespace); the problems met."""
        if self.mode != "pod":
            return []
        # The veths of built-in networks are not deleted one by one (25 ms each in the kernel): they go
        # with the pod's namespace when the supervisor, its last process, exits right after this.
        problems: List[str] = []
        if self.table is not None:  # the set-up failed before waiting for it
            try:
                self.table.wait()
            except RocketError:
                pass
        problems += release(
            self.files, self.uuid, self.data_dir, netns=f"/proc/{os.getpid()}/ns/net", preexec=self.in_host_namespace
        )
        if self.host_link is not None:
            self.host_link.close()
        if self.host_ns_fd is not None:
            os.close(self.host_ns_fd)
            self.host_ns_fd = None
        return problems


def check(files: PodFiles, uuid: str, pid: int) -> List[str]:
    """Whether a running pod's networks are still as they were set up: CNI CHECK for plugin networks
    (in the namespace of the supervisor `pid`), the host end of each veth for built-in ones."""
    try:
        record = json.loads(files.network.read_bytes())
    except (OSError, ValueError):
        return []
    from . import cni

    problems: List[str] = []
    for entry in record.get("networks") or []:
        if entry.get("type") in ("bridge", "ptp") and "conf" not in entry:
            if not os.path.exists(f"/sys/class/net/{entry['host_interface']}"):
                problems.append(
                    f"network {entry['name']}: the host end {entry['host_interface']} of {entry['ifname']} is gone"
                )
            continue
        try:
            cni.invoke(
                "CHECK",
                entry["conf"],
                container_id=uuid,
                netns=f"/proc/{pid}/ns/net",
                ifname=entry["ifname"],
                prev_result=entry.get("result"),
            )
        except RocketError as exc:
            problems.append(exc.message)
    return problems


def release(
    files: PodFiles,
    uuid: str,
    data_dir: Path,
    *,
    netns: str = "",
    preexec: Optional[Callable[[], None]] = None,
) -> List[str]:
    """Give back what a pod's networks hold outside its namespace: CNI DEL, its nftables chain, its
    leases and host ports. Idempotent (net.json records that it was done); returns the problems met."""
    try:
        record = json.loads(files.network.read_bytes())
        runtime = json.loads(files.runtime.read_bytes())
    except (OSError, ValueError):
        return []  # the pod never reached its network set-up, or it had none
    if record.get("released") or record.get("mode") != "pod":
        return []
    from . import cni, nftables
    from .config import NetworkRequest, subnet_of
    from .ipam import HostLocal

    problems: List[str] = []
    for entry in record.get("networks") or []:
        if entry.get("type") in ("bridge", "ptp") or "conf" not in entry:
            continue
        try:
            cni.invoke(
                "DEL",
                entry["conf"],
                container_id=uuid,
                netns=netns,
                ifname=entry["ifname"],
                prev_result=entry.get("result"),
                preexec=preexec,
            )
        except RocketError as exc:
            problems.append(exc.message)
    try:
        if runtime.get("ports"):
            nftables.remove_forwards(uuid, preexec=preexec)
    except RocketError as exc:
        problems.append(exc.message)
    for item in runtime.get("networks") or []:
        request = NetworkRequest.from_json(item)
        if request.builtin:
            HostLocal(data_dir, request.name, subnet_of(request.conf)).release(uuid)
    PortClaims(data_dir).release(uuid)
    if not problems:
        record["released"] = True
        atomic_write(files.network, json.dumps(record, indent=2, sort_keys=True).encode(), durable=False)
    return problems
