#!/usr/bin/env python3
"""Network set-up and teardown per pod: rocket's built-in bridge against Debian's CNI bridge plugin.

The issue's benchmark. Both sides do the same work for one pod on a bridge network with a gateway,
masquerade and host-local IPAM: lease an address, make a veth, put one end on the bridge and the other
in the pod's namespace as eth0 with its address and default route, write the masquerade rule; and
then undo it all.

    rocket   a fresh `/usr/bin/python3 -I -S` process, as a pod's supervisor is, timed from before its
             `import rocket.net.attach` (which loads pyroute2's encoders) through host_side(),
             unshare(CLONE_NEWNET), pod_side() and teardown(): everything a supervisor pays for its
             network. Not counted: the interpreter's start and the modules every supervisor loads with
             or without a network (stage1.plan, pod, fileio). The veth goes with the namespace when the
             process exits, as it does when a supervisor exits.
    CNI      `/usr/lib/cni/bridge` ADD then DEL (which run `/usr/lib/cni/host-local` themselves, and
             iptables for ipMasq), each with the configuration on stdin and CNI_* variables, on a
             network namespace made with `ip netns add` outside the timing.

Every run alternates the two, in the opposite order every other round, --runs times; it prints each
side's median of set-up, teardown and their sum, and the ratio rocket/CNI. Goal: no slower than CNI.
Run as root. It makes the bridges rktbench0 (10.250.0.0/24) and cnibench0 (10.251.0.0/24), a data
folder in a temporary directory and one namespace per CNI run, and removes them all, with the rules
both sides added, at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuids
from pathlib import Path
from typing import Dict, Iterator, List

REPO = Path(__file__).resolve().parents[1]
ENGINE_PARENT = REPO / "plugins" / "module_utils"
SYSTEM_PYTHON = "/usr/bin/python3"
CNI_BRIDGE = "/usr/lib/cni/bridge"

ROCKET_CONF = {
    "cniVersion": "1.0.0",
    "name": "bench",
    "type": "bridge",
    "bridge": "rktbench0",
    "isGateway": True,
    "isDefaultGateway": True,
    "ipMasq": True,
    "ipam": {"type": "host-local", "subnet": "10.250.0.0/24"},
}

# What one supervisor does for its network, in a process of its own.
CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.append(sys.argv[2])
from pathlib import Path
# What every supervisor has loaded before it looks at networks, with or without one.
import rocket.stage1.plan, rocket.pod, rocket.fileio
start = time.perf_counter()
from rocket.net.attach import PodNetwork
from rocket.pod import PodFiles
from rocket.stage1 import linux
pod = Path(sys.argv[3])
runtime = json.loads((pod / "runtime.json").read_text())
network = PodNetwork(PodFiles(pod), pod.name, Path(sys.argv[4]), runtime)
network.host_side()
linux.unshare(linux.CLONE_NEWNET)
network.pod_side()
ready = time.perf_counter()
problems = network.teardown()
done = time.perf_counter()
print(json.dumps({"setup": ready - start, "teardown": done - ready, "problems": problems}))
"""


def rocket_once(data: Path, pyroute2_home: str) -> Dict[str, float]:
    uuid = str(uuids.uuid4())
    pod = data / "pods" / "run" / uuid
    pod.mkdir(parents=True)
    runtime = {
        "net_mode": "pod",
        "networks": [{"name": "bench", "conf": ROCKET_CONF, "args": {}}],
        "hostname": f"rocket-{uuid}",
    }
    (pod / "runtime.json").write_text(json.dumps(runtime))
    result = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-S", "-c", CHILD, str(ENGINE_PARENT), pyroute2_home, str(pod), str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"rocket's side failed: {result.stderr.strip()}")
    times = json.loads(result.stdout)
    if times["problems"]:
        raise SystemExit(f"rocket's teardown reported: {times['problems']}")
    return {"setup": times["setup"], "teardown": times["teardown"]}


def cni_once(data: Path) -> Dict[str, float]:
    conf = dict(ROCKET_CONF, name="cnibench", bridge="cnibench0")
    conf["ipam"] = {"type": "host-local", "subnet": "10.251.0.0/24", "dataDir": str(data / "cni")}
    namespace = f"cnibench-{uuids.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        times = {}
        for command, key in (("ADD", "setup"), ("DEL", "teardown")):
            env = {
                "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": namespace,
                "CNI_NETNS": f"/run/netns/{namespace}",
                "CNI_IFNAME": "eth0",
                "CNI_PATH": "/usr/lib/cni",
            }
            started = time.perf_counter()
            result = subprocess.run([CNI_BRIDGE], input=json.dumps(conf), capture_output=True, text=True, env=env)
            times[key] = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(f"CNI {command} failed: {result.stdout.strip()} {result.stderr.strip()}")
        return times
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


@contextlib.contextmanager
def cleanup() -> Iterator[None]:
    try:
        yield
    finally:
        for bridge in ("rktbench0", "cnibench0"):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        # rocket's masquerade set keeps its subnet; remove just that element, not the table others use
        subprocess.run(
            ["nft", "delete", "element", "ip", "rocket", "masq_sources", "{ 10.250.0.0/24 }"],
            capture_output=True,
            check=False,
        )


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run it as root: it makes bridges, veths and network namespaces")
    if not os.path.exists(CNI_BRIDGE):
        raise SystemExit("needs Debian's containernetworking-plugins (apt-get install containernetworking-plugins)")
    sys.path.insert(0, str(ENGINE_PARENT))
    from rocket.net.rtnl import pyroute2_home

    home = pyroute2_home()
    if home is None:
        raise SystemExit("needs pyroute2 (bash scripts/setup.sh installs it)")
    samples: Dict[str, List[Dict[str, float]]] = {"rocket": [], "cni": []}
    with cleanup(), tempfile.TemporaryDirectory(prefix="rocket-net-bench-") as scratch:
        data = Path(scratch)
        rocket_once(data, home)  # untimed: bridges, nftables table, page cache
        cni_once(data)
        for run in range(args.runs):
            order = ["rocket", "cni"] if run % 2 == 0 else ["cni", "rocket"]
            for side in order:
                samples[side].append(rocket_once(data, home) if side == "rocket" else cni_once(data))
    medians = {
        side: {key: statistics.median(s[key] for s in runs) for key in ("setup", "teardown")}
        for side, runs in samples.items()
    }
    for side in medians:
        medians[side]["total"] = statistics.median(s["setup"] + s["teardown"] for s in samples[side])
    print(f"network set-up and teardown per pod, median of {args.runs} runs each (ms)")
    print(f"{'':8} {'set-up':>8} {'teardown':>9} {'total':>8}")
    for side, label in (("rocket", "rocket"), ("cni", "CNI")):
        row = medians[side]
        print(f"{label:8} {row['setup'] * 1000:8.1f} {row['teardown'] * 1000:9.1f} {row['total'] * 1000:8.1f}")
    ratio = medians["rocket"]["total"] / medians["cni"]["total"]
    verdict = "PASS" if ratio <= 1.0 else "MISS"
    print(f"ratio rocket/CNI: {ratio:.2f}x (goal <= 1.0x: {verdict})")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "medians": medians, "ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
