"""The few rtnetlink requests a pod network needs, encoded with pyroute2's message classes.

pyroute2's package `__init__` imports all of pyroute2 (NDB, IPDB, asyncio, conntrack: 150-250 ms),
which every pod start would pay. rocket needs only its message encoders (~35 ms), so it loads the
`pyroute2.netlink.rtnl.*msg` modules without running that `__init__`, and sends the encoded requests on
a plain netlink socket. A socket stays in the network namespace it was made in, so one made before the
supervisor unshares its namespace keeps talking to the host's.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.util
import ipaddress
import os
import socket
import struct
import sys
import types
from typing import Any, Dict, List, Optional, Tuple

from ..errors import NetworkError

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFF_UP = 0x1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTPROT_STATIC = 4
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
# Debian's python3-pyroute2 lives here; the supervisor runs with -I -S, so site-packages is not on its path.
SYSTEM_SITE = "/usr/lib/python3/dist-packages"

_messages: Dict[str, Any] = {}


def pyroute2_home() -> Optional[str]:
    """The folder pyroute2 is imported from (to put on the supervisor's path), or None if it is missing."""
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.dirname(next(iter(spec.submodule_search_locations)))


def _load() -> Dict[str, Any]:
    if _messages:
        return _messages
    if importlib.util.find_spec("pyroute2") is None and os.path.isdir(SYSTEM_SITE):
        sys.path.append(SYSTEM_SITE)
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        raise NetworkError(
            "pod networks need pyroute2, which this Python cannot import",
            hint="install it: apt-get install python3-pyroute2 (or pip install pyroute2)",
        )
    if "pyroute2" not in sys.modules:
        # The package object without its __init__: the submodules below import only what they need.
        package = types.ModuleType("pyroute2")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        sys.modules["pyroute2"] = package
    for module, name in (
        ("pyroute2.netlink.rtnl.ifinfmsg", "ifinfmsg"),
        ("pyroute2.netlink.rtnl.ifaddrmsg", "ifaddrmsg"),
        ("pyroute2.netlink.rtnl.rtmsg", "rtmsg"),
    ):
        _messages[name] = getattr(importlib.import_module(module), name)
    return _messages


class Netlink:
    """An rtnetlink socket in the network namespace that was current when it was made."""

    def __init__(self) -> None:
        self.messages = _load()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self.sequence = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, message: Any, kind: int, flags: int, *, what: str) -> bytes:
        """Send one request, wait for its answer; OSError with the kernel's errno if it refuses."""
        self.sequence += 1
        header = message["header"]
        header["type"] = kind
        header["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        header["sequence_number"] = self.sequence
        message.encode()
        self.sock.send(bytes(message.data))
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, answer, _flags, sequence, _pid = struct.unpack_from("=IHHII", data, offset)
                if sequence == self.sequence:
                    if answer == NLMSG_ERROR:
                        code = struct.unpack_from("=i", data, offset + 16)[0]
                        if code:
                            raise OSError(-code, f"{what}: {os.strerror(-code)}")
                        return b""
                    return data[offset : offset + length]
                offset += max(length, 16)

    def _link(self, index: int = 0, attrs: Optional[List[Tuple[str, Any]]] = None, **fields: int) -> Any:
        message = self.messages["ifinfmsg"]()
        message["index"] = index
        for key, value in fields.items():
            message[key] = value
        message["attrs"] = [list(pair) for pair in attrs or []]
        return message

    def link_index(self, name: str) -> Optional[int]:
        """The index of interface `name`, or None if there is none."""
        try:
            answer = self._request(self._link(attrs=[("IFLA_IFNAME", name)]), RTM_GETLINK, 0, what=f"find {name}")
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return int(struct.unpack_from("=i", answer, 20)[0]) if answer else None

    def add_bridge(self, name: str, *, mtu: Optional[int] = None) -> int:
        """Create bridge `name` unless it exists; its index."""
        attrs: List[Tuple[str, Any]] = [
            ("IFLA_IFNAME", name),
            ("IFLA_LINKINFO", {"attrs": [["IFLA_INFO_KIND", "bridge"]]}),
        ]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        with contextlib.suppress(FileExistsError):
            self._request(self._link(attrs=attrs), RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, what=f"create bridge {name}")
        index = self.link_index(name)
        if index is None:
            raise NetworkError(f"bridge {name} vanished right after it was created")
        return index

    def add_veth(self, name: str, peer: str, *, peer_namespace_fd: int, mtu: Optional[int] = None) -> int:
        """A veth pair: `name` here, `peer` in the namespace of `peer_namespace_fd`; the index of `name`."""
        peer_attrs: List[List[Any]] = [["IFLA_IFNAME", peer], ["IFLA_NET_NS_FD", peer_namespace_fd]]
        attrs: List[Tuple[str, Any]] = [
            ("IFLA_IFNAME", name),
            (
                "IFLA_LINKINFO",
                {
                    "attrs": [
                        ["IFLA_INFO_KIND", "veth"],
                        ["IFLA_INFO_DATA", {"attrs": [["VETH_INFO_PEER", {"attrs": peer_attrs}]]}],
                    ]
                },
            ),
        ]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
            peer_attrs.append(["IFLA_MTU", mtu])
        self._request(self._link(attrs=attrs), RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, what=f"create veth {name}")
        index = self.link_index(name)
        if index is None:
            raise NetworkError(f"veth {name} vanished right after it was created")
        return index

    def set_master(self, index: int, master: int) -> None:
        self._request(self._link(index, [("IFLA_MASTER", master)]), RTM_NEWLINK, 0, what="attach to bridge")

    def set_up(self, index: int) -> None:
        self._request(self._link(index, flags=IFF_UP, change=IFF_UP), RTM_NEWLINK, 0, what="set link up")

    def delete_link(self, index: int) -> None:
        self._request(self._link(index), RTM_DELLINK, 0, what="delete link")

    def add_address(self, index: int, interface: ipaddress.IPv4Interface, *, exist_ok: bool = False) -> None:
        message = self.messages["ifaddrmsg"]()
        message["family"] = socket.AF_INET
        message["prefixlen"] = interface.network.prefixlen
        message["index"] = index
        address = str(interface.ip)
        message["attrs"] = [["IFA_LOCAL", address], ["IFA_ADDRESS", address]]
        if interface.network.prefixlen < 31:
            message["attrs"].append(["IFA_BROADCAST", str(interface.network.broadcast_address)])
        try:
            self._request(message, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, what=f"add address {interface}")
        except FileExistsError:
            if not exist_ok:
                raise

    def add_route(
        self,
        destination: ipaddress.IPv4Network,
        *,
        gateway: Optional[ipaddress.IPv4Address] = None,
        oif: Optional[int] = None,
        exist_ok: bool = False,
    ) -> None:
        message = self.messages["rtmsg"]()
        message["family"] = socket.AF_INET
        message["dst_len"] = destination.prefixlen
        message["table"] = RT_TABLE_MAIN
        message["proto"] = RTPROT_STATIC
        message["scope"] = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        message["type"] = RTN_UNICAST
        attrs: List[List[Any]] = [["RTA_TABLE", RT_TABLE_MAIN]]
        if destination.prefixlen:
            attrs.append(["RTA_DST", str(destination.network_address)])
        if gateway is not None:
            attrs.append(["RTA_GATEWAY", str(gateway)])
        if oif is not None:
            attrs.append(["RTA_OIF", oif])
        message["attrs"] = attrs
        try:
            self._request(message, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, what=f"add route {destination}")
        except FileExistsError:
            if not exist_ok:
                raise
