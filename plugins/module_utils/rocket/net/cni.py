"""Networks of types rocket does not build in: a real CNI plugin, run as the CNI protocol says.

The plugin is `<type>` found on the CNI path; it gets CNI_COMMAND (ADD, CHECK, DEL), CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH in its environment and the network's configuration on
stdin (with `prevResult` for CHECK and DEL), and answers with a result (ADD) or an error object on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..errors import NetworkError
from ..paths import network_leases_dir

DEFAULT_CNI_PATH = "/usr/lib/cni:/opt/cni/bin"
DEFAULT_VERSION = "1.0.0"
TIMEOUT = 60.0


def cni_path() -> str:
    """Where plugins are looked for: $ROCKET_CNI_PATH, else Debian's and the upstream folder."""
    return os.environ.get("ROCKET_CNI_PATH") or DEFAULT_CNI_PATH


def find_plugin(kind: str) -> str:
    for folder in cni_path().split(":"):
        candidate = os.path.join(folder, kind)
        if folder and os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    raise NetworkError(
        f"no CNI plugin {kind!r} in {cni_path()}",
        hint="install containernetworking-plugins, or set ROCKET_CNI_PATH",
    )


def plugin_conf(conf: Dict[str, Any], data_dir: Path) -> Dict[str, Any]:
    """The configuration sent to the plugin: a cniVersion, and host-local leases kept under `--dir`."""
    sent = json.loads(json.dumps(conf))
    sent.setdefault("cniVersion", DEFAULT_VERSION)
    ipam = sent.get("ipam")
    if isinstance(ipam, dict) and ipam.get("type") == "host-local" and "dataDir" not in ipam:
        ipam["dataDir"] = str(network_leases_dir(data_dir, str(sent["name"])) / "cni")
    return sent


def invoke(
    command: str,
    conf: Dict[str, Any],
    *,
    container_id: str,
    netns: str,
    ifname: str,
    args: Optional[Dict[str, str]] = None,
    prev_result: Optional[Dict[str, Any]] = None,
    preexec: Optional[Callable[[], None]] = None,
) -> Dict[str, Any]:
    """Run the network's plugin for `command`; its parsed result ({} for CHECK and DEL)."""
    plugin = find_plugin(str(conf["type"]))
    sent = dict(conf)
    if prev_result is not None and command in ("CHECK", "DEL"):
        sent["prevResult"] = prev_result
    pairs: List[str] = ["IgnoreUnknown=1", *(f"{key}={value}" for key, value in (args or {}).items())]
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": ";".join(pairs),
        "CNI_PATH": cni_path(),
    }
    try:
        result = subprocess.run(
            [plugin],
            input=json.dumps(sent).encode(),
            capture_output=True,
            env=env,
            preexec_fn=preexec,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NetworkError(f"CNI plugin {plugin} did not finish {command} within {TIMEOUT:.0f}s") from exc
    output = result.stdout.decode(errors="replace").strip()
    if result.returncode != 0:
        try:
            error = json.loads(output)
            detail = f"{error.get('msg', '')} {error.get('details', '')}".strip()
        except ValueError:
            detail = output or result.stderr.decode(errors="replace").strip()
        name, kind = conf.get("name"), conf.get("type")
        raise NetworkError(
            f"network {name}: CNI plugin {kind} failed {command}: {detail or result.returncode}",
            hint=f"check the network's configuration and the plugin ({plugin})",
        )
    if command != "ADD":
        return {}
    try:
        parsed = json.loads(output)
    except ValueError as exc:
        raise NetworkError(f"network {conf.get('name')}: CNI plugin {plugin} answered ADD with no JSON") from exc
    if not isinstance(parsed, dict):
        raise NetworkError(f"network {conf.get('name')}: CNI plugin {plugin} answered ADD with {output[:80]!r}")
    return parsed


def addresses(result: Dict[str, Any]) -> List[Dict[str, str]]:
    """The addresses of a CNI result (0.3.0 and later: `ips`; 0.2.0: `ip4`), as {address, gateway}."""
    found: List[Dict[str, str]] = []
    for entry in result.get("ips") or []:
        if isinstance(entry, dict) and entry.get("address"):
            found.append({"address": str(entry["address"]), "gateway": str(entry.get("gateway") or "")})
    ip4 = result.get("ip4")
    if isinstance(ip4, dict) and ip4.get("ip"):
        found.append({"address": str(ip4["ip"]), "gateway": str(ip4.get("gateway") or "")})
    return found
