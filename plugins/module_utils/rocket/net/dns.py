"""A pod's `/etc/resolv.conf` and `/etc/hosts`, from rkt's flags and the pod's networks.

--dns=IP (repeated)   these name servers, with --dns-search, --dns-opt and --dns-domain
--dns=host            the host's own resolv.conf
--dns=none            the image's own file, untouched
(no --dns)            the host's resolv.conf for pods with a network, minus loopback name servers
                      (127.0.0.53 and friends answer only on the host); the image's own with --net=none
--hosts-entry=IP=HOST (repeated) lines added to the defaults; --hosts-entry=host: the host's /etc/hosts
"""

from __future__ import annotations

import ipaddress

from ..errors import UsageError
from ..record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"


class DnsOptions(Record):
    """What the flags asked for; stored in the pod at prepare."""

    FIELDS = ("servers", "search", "options", "domain", "mode", "hosts_entries", "hosts_from_host")

    def __init__(
        self,
        servers: Optional[List[str]] = None,
        search: Optional[List[str]] = None,
        options: Optional[List[str]] = None,
        domain: str = "",
        mode: str = "",
        hosts_entries: Optional[List[Tuple[str, str]]] = None,
        hosts_from_host: bool = False,
    ) -> None:
        self.servers = [] if servers is None else servers
        self.search = [] if search is None else search
        self.options = [] if options is None else options
        self.domain = domain
        self.mode = mode  # "", "host", "none" or "custom" (servers given)
        self.hosts_entries = [] if hosts_entries is None else hosts_entries
        self.hosts_from_host = hosts_from_host

    def to_json(self) -> Dict[str, Any]:
        return {
            "servers": self.servers,
            "search": self.search,
            "options": self.options,
            "domain": self.domain,
            "mode": self.mode,
            "hosts_entries": [list(pair) for pair in self.hosts_entries],
            "hosts_from_host": self.hosts_from_host,
        }

    @classmethod
    def from_json(cls, data: Optional[Dict[str, Any]]) -> DnsOptions:
        data = data or {}
        return cls(
            servers=list(data.get("servers") or []),
            search=list(data.get("search") or []),
            options=list(data.get("options") or []),
            domain=str(data.get("domain") or ""),
            mode=str(data.get("mode") or ""),
            hosts_entries=[(str(a), str(b)) for a, b in data.get("hosts_entries") or []],
            hosts_from_host=bool(data.get("hosts_from_host")),
        )


def options_from_flags(
    dns: List[str], search: List[str], opts: List[str], domain: str, hosts_entries: List[str]
) -> DnsOptions:
    """Check and gather the DNS and hosts flags of `prepare` and `run`."""
    result = DnsOptions(search=list(search), options=list(opts), domain=domain)
    for value in dns:
        if value in ("host", "none"):
            if len(dns) > 1:
                raise UsageError(f"--dns={value} cannot be combined with other --dns values")
            result.mode = value
            continue
        try:
            result.servers.append(str(ipaddress.ip_address(value)))
        except ValueError as exc:
            raise UsageError(f"--dns={value} is not an IP address, host or none") from exc
        result.mode = "custom"
    if (search or opts or domain) and result.mode in ("host", "none"):
        raise UsageError(f"--dns-search, --dns-opt and --dns-domain do not apply with --dns={result.mode}")
    for value in hosts_entries:
        if value == "host":
            result.hosts_from_host = True
            continue
        address, equals, names = value.partition("=")
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise UsageError(f"--hosts-entry={value}: {address!r} is not an IP address", hint="IP=HOST") from exc
        if not equals or not names.strip() or any(c.isspace() for c in names):
            raise UsageError(f"--hosts-entry={value}: give one host name after '='", hint="IP=HOST")
        result.hosts_entries.append((address, names))
    return result


def _read(path: str) -> str:
    try:
        with open(path) as stream:
            return stream.read()
    except OSError:
        return ""


def manages_resolv_conf(options: DnsOptions, *, network: str) -> bool:
    """Whether the pod gets a resolv.conf from rocket (else each image keeps its own)."""
    if options.mode == "none":
        return False
    asked = options.mode in ("custom", "host") or bool(options.search or options.options or options.domain)
    return asked or network != "none"


def resolv_conf(options: DnsOptions, *, network: str, cni_dns: Optional[Dict[str, Any]] = None) -> Optional[str]:
    """The pod's resolv.conf, or None to leave each image's own file."""
    if not manages_resolv_conf(options, network=network):
        return None
    if options.mode == "host" or (not options.mode and network == "host"):
        return _read(HOST_RESOLV_CONF)
    if options.mode == "custom" or options.search or options.options or options.domain or cni_dns:
        servers = options.servers or [str(s) for s in (cni_dns or {}).get("nameservers") or []]
        search = options.search or [str(s) for s in (cni_dns or {}).get("search") or []]
        opts = options.options or [str(s) for s in (cni_dns or {}).get("options") or []]
        domain = options.domain or str((cni_dns or {}).get("domain") or "")
        if servers or search or opts or domain:
            lines = ["# written by rocket for this pod"]
            lines += [f"domain {domain}"] if domain else []
            lines += [f"search {' '.join(search)}"] if search else []
            lines += [f"nameserver {server}" for server in servers]
            lines += [f"options {' '.join(opts)}"] if opts else []
            return "\n".join(lines) + "\n"
    kept = []
    for line in _read(HOST_RESOLV_CONF).splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                if ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    continue  # a resolver on the host's loopback is out of the pod's reach
            except ValueError:
                continue
        kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def hosts_file(options: DnsOptions, *, hostname: str, addresses: List[str]) -> str:
    """The pod's /etc/hosts: the host's (--hosts-entry=host) or defaults, then the requested entries."""
    if options.hosts_from_host:
        text = _read(HOST_HOSTS)
        lines = text.splitlines()
    else:
        lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            f"{addresses[0] if addresses else '127.0.1.1'}\t{hostname}",
        ]
    lines += [f"{address}\t{names}" for address, names in options.hosts_entries]
    return "\n".join(lines) + "\n"
