"""Network configurations: the built-in `default`, the operator's `net.d/*.conf`, and `--net` requests.

A configuration is CNI's JSON (`name`, `type`, plugin fields, `ipam`). The types `bridge` and `ptp` with
the `host-local` IPAM are rocket's own (attach.py); any other type is a CNI plugin found on the CNI path.
Configurations are read at `prepare` and copied into the pod, so a pod runs with the networks it was
prepared with even if `net.d` changes later.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

from ..errors import NetworkError, UsageError
from ..paths import net_config_dir
from ..patterns import LazyPattern
from ..record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

DEFAULT_SUBNET = "172.16.28.0/24"  # rkt's
DEFAULT_NETWORK: Dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "default",
    "type": "bridge",
    "bridge": "rocket0",
    "isGateway": True,
    "isDefaultGateway": True,
    "ipMasq": True,
    "ipam": {"type": "host-local", "subnet": DEFAULT_SUBNET},
}
BUILTIN_TYPES = ("bridge", "ptp")
MODES = ("none", "host")  # not networks: loopback only, or the host's own namespace
NAME = LazyPattern(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
INTERFACE = LazyPattern(r"^[A-Za-z0-9_.\-]{1,15}$")


class NetworkRequest(Record):
    """One network a pod joins: its configuration and what the pod asked of it (`IP=` and other CNI_ARGS)."""

    FIELDS = ("name", "conf", "args")

    def __init__(self, name: str, conf: Dict[str, Any], args: Optional[Dict[str, str]] = None) -> None:
        self.name = name
        self.conf = conf
        self.args = {} if args is None else args

    @property
    def builtin(self) -> bool:
        return self.conf.get("type") in BUILTIN_TYPES

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "conf": self.conf, "args": self.args}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> NetworkRequest:
        return cls(name=str(data["name"]), conf=dict(data["conf"]), args=dict(data.get("args") or {}))


class Subnet(Record):
    """The address range of a built-in network's host-local IPAM."""

    FIELDS = ("network", "gateway", "first", "last", "routes")

    def __init__(
        self,
        network: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address,
        first: ipaddress.IPv4Address,
        last: ipaddress.IPv4Address,
        routes: List[Tuple[ipaddress.IPv4Network, Optional[ipaddress.IPv4Address]]],
    ) -> None:
        self.network = network
        self.gateway = gateway
        self.first = first
        self.last = last
        self.routes = routes


def parse_net_flag(value: str) -> List[Tuple[str, Dict[str, str]]]:
    """`--net` as rkt spells it: `default`, `none`, `host`, `a,b`, `name:IP=10.1.2.3;OTHER=x`."""
    result: List[Tuple[str, Dict[str, str]]] = []
    for part in value.split(","):
        name, _colon, arguments = part.strip().partition(":")
        if not name:
            raise UsageError(f"--net={value}: empty network name", hint="e.g. --net=default or --net=a,b")
        args: Dict[str, str] = {}
        for item in filter(None, arguments.split(";")):
            key, equals, text = item.partition("=")
            if not equals or not key:
                raise UsageError(f"--net={value}: {item!r} is not KEY=VALUE", hint="e.g. --net=default:IP=172.16.28.9")
            args[key] = text
        if name in [n for n, _args in result]:
            raise UsageError(f"--net={value}: network {name} is named twice")
        result.append((name, args))
    names = [name for name, _args in result]
    for mode in MODES:
        if mode in names and len(names) > 1:
            raise UsageError(f"--net={value}: {mode} cannot be combined with other networks")
    return result


def load_configs(config_dirs: List[Path]) -> Dict[str, Tuple[Dict[str, Any], str]]:
    """Every configuration in the `net.d` of each config folder, by name, with the file it came from.

    Files are read in lexical order; the local folder comes first and wins over the system one.
    """
    found: Dict[str, Tuple[Dict[str, Any], str]] = {}
    for config_dir in config_dirs:
        folder = net_config_dir(config_dir)
        if not folder.is_dir():
            continue
        seen_here: Dict[str, str] = {}
        for path in sorted(folder.glob("*.conf")):
            conf = _read_conf(path)
            name = conf["name"]
            if name in seen_here:
                raise NetworkError(
                    f"network {name} is defined twice: in {seen_here[name]} and in {path}",
                    hint="rename or remove one of them",
                )
            seen_here[name] = str(path)
            found.setdefault(name, (conf, str(path)))
    return found


def _read_conf(path: Path) -> Dict[str, Any]:
    try:
        conf = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise NetworkError(f"cannot read network configuration {path}: {exc}") from exc
    except ValueError as exc:
        raise NetworkError(f"network configuration {path} is not JSON: {exc}", hint="fix its syntax") from exc
    if not isinstance(conf, dict):
        raise NetworkError(f"network configuration {path} is not a JSON object")
    check_conf(conf, where=str(path))
    return conf


def check_conf(conf: Dict[str, Any], *, where: str) -> None:
    """Refuse a configuration rocket cannot use, naming the file and the field."""
    name = conf.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise NetworkError(f"{where}: 'name' must be letters, digits, '_', '.', '-' (got {name!r})")
    if name in MODES:
        raise NetworkError(f"{where}: a network cannot be called {name!r}, which --net reserves")
    kind = conf.get("type")
    if not isinstance(kind, str) or not re.match(r"^[A-Za-z0-9_\-]+$", kind):
        raise NetworkError(f"{where}: 'type' must name a plugin (got {kind!r})")
    if kind in BUILTIN_TYPES:
        if kind == "bridge":
            bridge = conf.get("bridge", "cni0")
            if not isinstance(bridge, str) or not INTERFACE.match(bridge):
                raise NetworkError(f"{where}: 'bridge' must be an interface name of 1 to 15 characters")
        mtu = conf.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
            raise NetworkError(f"{where}: 'mtu' must be a number from 68 to 65535")
        ipam = conf.get("ipam")
        if not isinstance(ipam, dict) or ipam.get("type") != "host-local":
            raise NetworkError(
                f"{where}: the built-in {kind} type needs 'ipam' of type host-local",
                hint="or run the CNI plugin: give the network a type rocket does not build in",
            )
        subnet_of(conf, where=where)


def subnet_of(conf: Dict[str, Any], *, where: str = "") -> Subnet:
    """The host-local range of a built-in network (`subnet` or CNI's `ranges[0][0]`), checked."""

    where = where or f"network {conf.get('name')}"
    ipam = dict(conf.get("ipam") or {})
    ranges = ipam.get("ranges")
    if isinstance(ranges, list) and ranges and isinstance(ranges[0], list) and ranges[0]:
        ipam.update(ranges[0][0])
    try:
        network = ipaddress.IPv4Network(str(ipam.get("subnet")), strict=True)
    except ValueError as exc:
        raise NetworkError(f"{where}: ipam.subnet: {exc}", hint="an IPv4 network such as 10.88.0.0/24") from exc
    if network.prefixlen > 30:
        raise NetworkError(f"{where}: ipam.subnet {network} is too small for a gateway and a pod")

    def address(key: str, default: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        if key not in ipam:
            return default
        try:
            value = ipaddress.IPv4Address(str(ipam[key]))
        except ValueError as exc:
            raise NetworkError(f"{where}: ipam.{key}: {exc}") from exc
        if value not in network:
            raise NetworkError(f"{where}: ipam.{key} {value} is outside the subnet {network}")
        return value

    gateway = address("gateway", network.network_address + 1)
    first = address("rangeStart", network.network_address + 1)
    last = address("rangeEnd", network.broadcast_address - 1)
    if first > last:
        raise NetworkError(f"{where}: ipam.rangeStart {first} is after ipam.rangeEnd {last}")
    routes: List[Tuple[ipaddress.IPv4Network, Optional[ipaddress.IPv4Address]]] = []
    for index, route in enumerate(ipam.get("routes") or []):
        try:
            destination = ipaddress.IPv4Network(str(route["dst"]))
            via = ipaddress.IPv4Address(str(route["gw"])) if route.get("gw") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise NetworkError(f"{where}: ipam.routes[{index}]: {exc}", hint='e.g. {"dst": "0.0.0.0/0"}') from exc
        routes.append((destination, via))
    return Subnet(network=network, gateway=gateway, first=first, last=last, routes=routes)


def resolve_requests(flag: str, config_dirs: List[Path]) -> Tuple[str, List[NetworkRequest]]:
    """What `--net=flag` means: ('none'|'host', []) or ('pod', the networks in the order given)."""
    wanted = parse_net_flag(flag)
    if len(wanted) == 1 and wanted[0][0] in MODES:
        if wanted[0][1]:
            raise UsageError(f"--net={flag}: {wanted[0][0]} takes no arguments")
        return wanted[0][0], []
    configs: Optional[Dict[str, Tuple[Dict[str, Any], str]]] = None
    requests: List[NetworkRequest] = []
    for name, args in wanted:
        if configs is None:
            configs = load_configs(config_dirs)
        if name in configs:
            conf = json.loads(json.dumps(configs[name][0]))  # a deep copy without the copy module
        elif name == "default":
            conf = json.loads(json.dumps(DEFAULT_NETWORK))
        else:
            known = ", ".join(["default", *sorted(n for n in configs if n != "default")])
            raise UsageError(
                f"--net: no network named {name!r}",
                hint=f"known here: {known}; add a file to {net_config_dir(config_dirs[0])}",
            )
        request = NetworkRequest(name=name, conf=conf, args=args)
        if "IP" in args:
            try:
                requested = ipaddress.IPv4Address(args["IP"])
            except ValueError as exc:
                raise UsageError(f"--net={flag}: IP={args['IP']} is not an IPv4 address") from exc
            if request.builtin:
                subnet = subnet_of(conf)
                if not subnet.first <= requested <= subnet.last or requested == subnet.gateway:
                    raise UsageError(
                        f"--net={flag}: {requested} is not an address network {name} gives out",
                        hint=f"choose one from {subnet.first} to {subnet.last}, other than {subnet.gateway}",
                    )
        requests.append(request)
    return "pod", requests
