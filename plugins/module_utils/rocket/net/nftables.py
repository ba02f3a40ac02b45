"""rocket's nftables rules, all in its own table `ip rocket`: masquerade and forwarded ports.

    set masq_sources     subnets of the networks with ipMasq; traffic from them to elsewhere is masqueraded
    chain postrouting    nat: that masquerade, and connections to a forwarded port made from the host's
                         127.0.0.0/8 or from a pod (hairpin), so the pod's answer comes back the same way
    chain prerouting     nat: packets to a local address go through `ports`
    chain output         nat: the same for connections the host itself opens (127.0.0.1 included)
    chain ports          one `jump pod-<uuid>` per pod with forwarded ports
    chain pod-<uuid>     that pod's DNAT rules

The table never touches another table, a policy or the host's own rules. The base of the table is
written in one transaction that adds what is missing and rewrites the base chains, so concurrent pod
starts all leave it the same.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from typing import Any, Callable, Dict, Iterable, List, Optional

from ..errors import NetworkError
from ..record import Record

TABLE = "rocket"
BASE = """\
add table ip rocket
add set ip rocket masq_sources { type ipv4_addr; flags interval; }
add chain ip rocket postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ip rocket prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain ip rocket output { type nat hook output priority -100; policy accept; }
add chain ip rocket ports
flush chain ip rocket postrouting
flush chain ip rocket prerouting
flush chain ip rocket output
add rule ip rocket prerouting fib daddr type local jump ports
add rule ip rocket output fib daddr type local jump ports
add rule ip rocket postrouting ip saddr @masq_sources ip daddr != @masq_sources masquerade
add rule ip rocket postrouting ip saddr 127.0.0.0/8 ct status dnat masquerade
add rule ip rocket postrouting ip saddr @masq_sources ct status dnat masquerade
"""


class Forward(Record):
    """One forwarded port: host (address or every local one) and port to the pod's address and port."""

    FIELDS = ("protocol", "host_port", "pod_address", "pod_port", "host_ip")

    def __init__(self, protocol: str, host_port: int, pod_address: str, pod_port: int, host_ip: str = "") -> None:
        self.protocol = protocol
        self.host_port = host_port
        self.pod_address = pod_address
        self.pod_port = pod_port
        self.host_ip = host_ip

    def rule(self) -> str:
        match = f"ip daddr {ipaddress.IPv4Address(self.host_ip)} " if self.host_ip else ""
        return f"{match}{self.protocol} dport {self.host_port} dnat to {self.pod_address}:{self.pod_port}"


def chain_name(uuid: str) -> str:
    return f"pod-{uuid}"


def _binary(what: str) -> str:
    # /usr/sbin is not on every PATH (a unit's, an Ansible module's under some become methods).
    binary = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if binary is None:
        raise NetworkError(f"cannot {what}: nft is not installed", hint="apt-get install nftables")
    return binary


class Transaction:
    """`nft -f -` running `script` in the background; wait() for its end (NetworkError if nft refused)."""

    def __init__(self, script: str, *, what: str, preexec: Optional[Callable[[], None]] = None) -> None:
        self.what = what
        self.process = subprocess.Popen(
            [_binary(what), "-f", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec,
        )
        self.script = script.encode()

    def wait(self) -> str:
        out, err = self.process.communicate(self.script)
        if self.process.returncode != 0:
            detail = err.decode(errors="replace").strip().splitlines()
            raise NetworkError(f"cannot {self.what}: nft says {detail[0] if detail else self.process.returncode}")
        return out.decode(errors="replace")


def nft(script: str, *, preexec: Optional[Callable[[], None]] = None, what: str) -> str:
    """Run `nft -f -` with `script` and wait for it; NetworkError with nft's own message if it refuses."""
    return Transaction(script, what=what, preexec=preexec).wait()


def ensure_base(masquerade: Iterable[str], *, preexec: Optional[Callable[[], None]] = None) -> Transaction:
    """Start writing the table with its base chains and `masquerade` subnets in its set; wait() on it.

    It runs while the caller makes the pod's interfaces: nft's own start-up is most of its ~10 ms.
    """
    script = BASE
    subnets = sorted({str(ipaddress.IPv4Network(s)) for s in masquerade})
    if subnets:
        script += f"add element ip rocket masq_sources {{ {', '.join(subnets)} }}\n"
    return Transaction(script, what="set up rocket's nftables table", preexec=preexec)


def add_forwards(uuid: str, forwards: List[Forward], *, preexec: Optional[Callable[[], None]] = None) -> None:
    """The pod's chain with its DNAT rules, and the jump to it, in one transaction."""
    chain = chain_name(uuid)
    lines = [f"add chain ip rocket {chain}", f"flush chain ip rocket {chain}"]
    lines += [f"add rule ip rocket {chain} {forward.rule()}" for forward in forwards]
    lines.append(f'add rule ip rocket ports jump {chain} comment "pod {uuid}"')
    nft("\n".join(lines) + "\n", preexec=preexec, what=f"forward the ports of pod {uuid}")


def _list(arguments: str, *, preexec: Optional[Callable[[], None]]) -> List[Dict[str, Any]]:
    result = subprocess.run(
        [_binary(arguments), "-j", *arguments.split()], capture_output=True, preexec_fn=preexec, check=False
    )
    if result.returncode != 0:
        return []  # no table or chain: nothing of ours is there
    try:
        return list(json.loads(result.stdout).get("nftables") or [])
    except ValueError:
        return []


def remove_forwards(uuid: str, *, preexec: Optional[Callable[[], None]] = None) -> bool:
    """Delete the pod's jump and chain if they exist; True if something was removed."""
    chain = chain_name(uuid)
    items = _list(f"list chain ip {TABLE} ports", preexec=preexec)
    lines = []
    for item in items:
        rule = item.get("rule")
        if not rule:
            continue
        targets = [expr.get("jump", {}).get("target") for expr in rule.get("expr") or [] if isinstance(expr, dict)]
        if chain in targets:
            lines.append(f"delete rule ip rocket ports handle {int(rule['handle'])}")
    if any(item.get("chain", {}).get("name") == chain for item in _list(f"list table ip {TABLE}", preexec=preexec)):
        lines.append(f"delete chain ip rocket {chain}")
    if not lines:
        return False
    nft("\n".join(lines) + "\n", preexec=preexec, what=f"remove the forwarded ports of pod {uuid}")
    return True


def pod_chains(*, preexec: Optional[Callable[[], None]] = None) -> List[str]:
    """The names of the per-pod chains in rocket's table (for tests and gc)."""
    return sorted(
        item["chain"]["name"]
        for item in _list(f"list table ip {TABLE}", preexec=preexec)
        if item.get("chain", {}).get("table") == TABLE and item["chain"]["name"].startswith("pod-")
    )
