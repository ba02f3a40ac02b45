"""host-local IPAM for the built-in network types: one lease file per address, under `--dir`.

`<dir>/networks/<name>/<address>` holds "<pod uuid> <interface>"; `lock` serialises allocation (an
flock, dropped by the kernel if the process dies); `last_reserved` makes allocation go round the range
like CNI's host-local does, so an address just released is not handed out again at once (neighbours
may still cache its old MAC).
"""

from __future__ import annotations

import errno
import ipaddress
import os
from pathlib import Path
from typing import List, Optional

from ..errors import NetworkError
from ..locks import FileLock
from ..paths import network_leases_dir
from .config import Subnet

LAST_RESERVED = "last_reserved"


class HostLocal:
    """The leases of one network under one data directory."""

    def __init__(self, data_dir: Path, network: str, subnet: Subnet) -> None:
        self.network = network
        self.subnet = subnet
        self.folder = network_leases_dir(data_dir, network)

    def _locked(self) -> FileLock:
        """The flock that serialises changes to this folder (the kernel drops it if the process dies)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FileLock(self.folder / "lock")

    def _take(self, address: ipaddress.IPv4Address, owner: str, interface: str) -> bool:
        try:
            fd = os.open(self.folder / str(address), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as lease:
            lease.write(f"{owner} {interface}\n")
        return True

    def allocate(self, owner: str, interface: str, requested: Optional[str] = None) -> ipaddress.IPv4Address:
        """Lease an address to `owner` (a pod UUID): `requested` or the next free one after the last."""
        subnet = self.subnet
        with self._locked():
            if requested is not None:
                address = ipaddress.IPv4Address(requested)
                if not subnet.first <= address <= subnet.last or address == subnet.gateway:
                    raise NetworkError(f"network {self.network}: {address} is outside its range")
                if not self._take(address, owner, interface):
                    holder = self.holder(address)
                    raise NetworkError(
                        f"network {self.network}: {address} is already leased to pod {holder}",
                        hint="ask for another address, or stop that pod",
                    )
                return address
            last_path = self.folder / LAST_RESERVED
            try:
                last = ipaddress.IPv4Address(last_path.read_text().strip())
            except (OSError, ValueError):
                last = subnet.last
            size = int(subnet.last) - int(subnet.first) + 1
            start = int(last) + 1 if subnet.first <= last < subnet.last else int(subnet.first)
            for step in range(size):
                candidate = ipaddress.IPv4Address(int(subnet.first) + (start - int(subnet.first) + step) % size)
                if candidate in (subnet.gateway, subnet.network.network_address, subnet.network.broadcast_address):
                    continue
                if self._take(candidate, owner, interface):
                    last_path.write_text(f"{candidate}\n")
                    return candidate
        raise NetworkError(
            f"network {self.network}: every address from {subnet.first} to {subnet.last} is leased",
            hint="stop or gc pods, or widen ipam.subnet",
        )

    def holder(self, address: ipaddress.IPv4Address) -> str:
        try:
            return (self.folder / str(address)).read_text().split()[0]
        except (OSError, IndexError):
            return "?"

    def release(self, owner: str) -> List[str]:
        """Give back every address `owner` holds on this network; returns them."""
        released: List[str] = []
        if not self.folder.is_dir():
            return released
        with self._locked():
            for path in self.folder.iterdir():
                if path.name in ("lock", LAST_RESERVED):
                    continue
                try:
                    holder = path.read_text().split()
                except OSError:
                    continue
                if holder and holder[0] == owner:
                    try:
                        path.unlink()
                    except OSError as exc:
                        if exc.errno != errno.ENOENT:
                            raise
                    released.append(path.name)
        return released

    def leases(self) -> List[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.name not in ("lock", LAST_RESERVED))
