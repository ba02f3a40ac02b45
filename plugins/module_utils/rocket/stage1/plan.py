"""The stage0/stage1 contract: from a prepared pod folder to what the supervisor and init execute.

stage0 (`rocket prepare`) writes, in the pod folder:
    pod                      the reified pod manifest
    runtime.json             {created, hostname, flavor, restart, net, interactive, stop_timeout,
                             apps: {NAME: {image_id, image_name, lower}}, seccomp: {NAME: CLI spec}}
    apps/NAME/image-manifest the image manifest of each app
stage1 (this module) reads only those, so a pod runs the same way from any engine copy.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from .. import isolators as iso
from ..errors import PodStateError, RocketError
from ..pod import PodFiles
from ..record import Record
from ..users import resolve_group, resolve_user, supplementary_groups
from .flavor import flavor_named
from .init import AppRun, PodRun
from .launch import Identity, Launch, Restrictions
from .rootfs import RootPlan, VolumeMount

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENFORCED = {
    iso.RESOURCE_MEMORY,
    iso.RESOURCE_CPU,
    iso.CAPS_RETAIN,
    iso.CAPS_REMOVE,
    iso.NO_NEW_PRIVILEGES,
    iso.SECCOMP_RETAIN,
    iso.SECCOMP_REMOVE,
    iso.OOM_SCORE_ADJ,
    iso.CPU_SHARES,
    iso.UNIX_SYSCTL,
}


class PodPlan(Record):
    """What the supervisor needs besides the PodRun: names, cgroup, metadata material, warnings."""

    FIELDS = (
        "run",
        "uuid",
        "hostname",
        "private_network",
        "interactive",
        "flavor",
        "sysctls",
        "app_limits",
        "warnings",
        "image_manifests",
        "image_ids",
        "manifest_bytes",
        "runtime",
    )

    def __init__(
        self,
        run: PodRun,
        uuid: str,
        hostname: str,
        private_network: bool,
        interactive: bool,
        flavor: str = "ns",
        sysctls: Optional[Dict[str, str]] = None,
        app_limits: Optional[Dict[str, Dict[str, int]]] = None,
        warnings: Optional[List[str]] = None,
        image_manifests: Optional[Dict[str, bytes]] = None,
        image_ids: Optional[Dict[str, str]] = None,
        manifest_bytes: bytes = b"",
        runtime: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.run = run
        self.uuid = uuid
        self.hostname = hostname
        self.private_network = private_network
        self.interactive = interactive
        self.flavor = flavor
        self.sysctls = {} if sysctls is None else sysctls
        self.app_limits = {} if app_limits is None else app_limits
        self.warnings = [] if warnings is None else warnings
        self.image_manifests = {} if image_manifests is None else image_manifests
        self.image_ids = {} if image_ids is None else image_ids
        self.manifest_bytes = manifest_bytes
        self.runtime = {} if runtime is None else runtime


def _isolator_map(items: Optional[List[Dict[str, Any]]]) -> Dict[str, Any]:
    return {item["name"]: item.get("value") for item in items or []}


def _environment(app: Dict[str, Any], name: str, metadata_url: str) -> Dict[str, str]:
    """rkt's precedence: the image's app environment (already merged with --set-env in the pod manifest),
    PATH only if the app sets none, then the specification's variables, which always win."""
    env = {item["name"]: item["value"] for item in app.get("environment") or []}
    env.setdefault("PATH", DEFAULT_PATH)
    env["AC_APP_NAME"] = name
    env["AC_METADATA_URL"] = metadata_url
    env["container"] = "rocket"
    return env


def _volumes(
    files: PodFiles, manifest: Dict[str, Any], entry: Dict[str, Any], app: Dict[str, Any]
) -> List[VolumeMount]:
    declared = {volume["name"]: volume for volume in manifest.get("volumes") or []}
    mounts: List[VolumeMount] = []
    targets = set()

    def source_of(name: str, volume: Optional[Dict[str, Any]]) -> Tuple[str, bool, bool]:
        if volume is None or volume.get("kind") == "empty":
            folder = files.root / "volumes" / name
            if not folder.exists():
                folder.mkdir(parents=True)
                mode = int((volume or {}).get("mode", "0755"), 8)
                os.chown(folder, int((volume or {}).get("uid", 0)), int((volume or {}).get("gid", 0)))
                os.chmod(folder, mode)
            return str(folder), bool((volume or {}).get("readOnly", False)), True
        source = str(volume.get("source", ""))
        if not os.path.exists(source):
            raise PodStateError(
                f"volume {name}: host path {source} does not exist", hint="create it, or fix --volume", volume=name
            )
        return source, bool(volume.get("readOnly", False)), bool(volume.get("recursive", True))

    for mount in entry.get("mounts") or []:
        name = mount["volume"]
        if name not in declared:
            raise PodStateError(f"app {entry['name']} mounts volume {name}, which the pod does not declare")
        source, read_only, recursive = source_of(name, declared[name])
        mounts.append(VolumeMount(source, mount["path"], read_only, recursive))
        targets.add(os.path.normpath(mount["path"]))
    for point in app.get("mountPoints") or []:
        if os.path.normpath(point["path"]) in targets:
            continue
        # A mount point nothing was mounted on gets the volume of its name, else an implicit empty one.
        source, read_only, recursive = source_of(point["name"], declared.get(point["name"]))
        mounts.append(VolumeMount(source, point["path"], read_only or bool(point.get("readOnly")), recursive))
    return mounts


def _etc_files(files: PodFiles, runtime: Dict[str, Any]) -> List[VolumeMount]:
    """The pod's hosts (always) and resolv.conf (unless the image keeps its own), bound read-only."""
    from ..net.dns import DnsOptions, manages_resolv_conf

    mounts = [VolumeMount(str(files.etc / "hosts"), "/etc/hosts", read_only=True, recursive=False)]
    network = str(runtime.get("net_mode") or runtime.get("net") or "none")
    if manages_resolv_conf(DnsOptions.from_json(runtime.get("dns")), network=network):
        mounts.append(VolumeMount(str(files.etc / "resolv.conf"), "/etc/resolv.conf", read_only=True, recursive=False))
    return mounts


def _launch(
    app: str,
    argv: List[str],
    *,
    env: Dict[str, str],
    root: str,
    workdir: str,
    identity: Identity,
    restrictions: Restrictions,
) -> Launch:
    return Launch(app, list(argv), env, root, workdir, identity, restrictions)


def build_plan(files: PodFiles, uuid: str, *, metadata_url: str, cgroup: Any = None) -> PodPlan:
    """Read a prepared pod folder into the plans of its apps; PodStateError if something is missing."""
    from .caps import resolve_capabilities
    from .seccomp import compile_plan, resolve_seccomp

    try:
        manifest_bytes = files.manifest.read_bytes()
        manifest = json.loads(manifest_bytes)
        runtime = json.loads(files.runtime.read_bytes())
    except (OSError, ValueError) as exc:
        raise PodStateError(f"pod {uuid} is incomplete: {exc}", hint="remove it and prepare it again") from exc
    plan = PodPlan(
        run=PodRun(apps=[], restart=runtime.get("restart", "no"), stop_timeout=float(runtime.get("stop_timeout", 10))),
        uuid=uuid,
        hostname=runtime.get("hostname") or f"rocket-{uuid}",
        private_network=(runtime.get("net_mode") or runtime.get("net", "none")) != "host",
        interactive=bool(runtime.get("interactive")),
        flavor=runtime.get("flavor", "ns"),
        manifest_bytes=manifest_bytes,
        runtime=runtime,
    )
    flavor = flavor_named(plan.flavor)
    plan.private_network = flavor.private_network(plan.private_network)
    pod_isolators = _isolator_map(manifest.get("isolators"))
    plan.sysctls = dict(pod_isolators.get(iso.UNIX_SYSCTL) or {})
    for name in pod_isolators:
        if name not in ENFORCED:
            plan.warnings.append(f"pod isolator {name} is not enforced")
    for entry in manifest["apps"]:
        name = entry["name"]
        info = runtime["apps"][name]
        image_manifest_bytes = files.app_dir(name).joinpath("image-manifest").read_bytes()
        image_manifest = json.loads(image_manifest_bytes)
        plan.image_manifests[name] = image_manifest_bytes
        plan.image_ids[name] = info["image_id"]
        app = entry.get("app") or image_manifest.get("app")
        if not app or not app.get("exec"):
            raise PodStateError(f"app {name} has nothing to execute", hint="give --exec")
        lower = Path(info["lower"])
        uid, user_gid, _home = resolve_user(lower, str(app["user"]))
        gid = resolve_group(lower, str(app["group"])) if app.get("group") is not None else user_gid
        user_name = str(app["user"])
        groups = supplementary_groups(lower, user_name, list(app.get("supplementaryGIDs") or []))
        isolators = _isolator_map(app.get("isolators"))
        for isolator in isolators:
            if isolator not in ENFORCED:
                plan.warnings.append(f"app {name}: isolator {isolator} is not enforced")
        capabilities = resolve_capabilities(app.get("isolators") or [])
        seccomp = resolve_seccomp(app.get("isolators") or [], cli=(runtime.get("seccomp") or {}).get(name))
        explicit = {i.get("name") for i in app.get("isolators") or []}
        capabilities = flavor.capabilities(capabilities, explicit=bool(explicit & {iso.CAPS_RETAIN, iso.CAPS_REMOVE}))
        seccomp = flavor.seccomp(  # type: ignore[assignment]
            seccomp,
            explicit=bool(explicit & {iso.SECCOMP_RETAIN, iso.SECCOMP_REMOVE})
            or bool((runtime.get("seccomp") or {}).get(name)),
        )
        restrictions = Restrictions(
            capabilities=capabilities,
            no_new_privs=bool(isolators.get(iso.NO_NEW_PRIVILEGES)),
            seccomp=compile_plan(seccomp) if seccomp is not None else None,
            oom_score_adj=isolators.get(iso.OOM_SCORE_ADJ),
            cgroup_namespace=flavor.cgroup_namespace,
        )
        limits: Dict[str, int] = {}
        memory = isolators.get(iso.RESOURCE_MEMORY) or {}
        if memory.get("limit") is not None:
            limits["memory"] = iso.memory_bytes(iso.parse_quantity(str(memory["limit"])))
        cpu = isolators.get(iso.RESOURCE_CPU) or {}
        if cpu.get("limit") is not None:
            limits["cpu"] = iso.cpu_millicores(iso.parse_quantity(str(cpu["limit"])))
        if isolators.get(iso.CPU_SHARES) is not None:
            limits["cpu_shares"] = int(isolators[iso.CPU_SHARES])
        plan.app_limits[name] = limits
        if cgroup is not None:
            try:
                restrictions.cgroup_procs = cgroup.procs_files(name)
            except RocketError as exc:
                plan.warnings.append(f"app {name}: {exc.message}")
        identity = Identity(uid=uid, gid=gid, groups=groups)
        env = _environment(app, name, metadata_url)
        workdir = app.get("workingDirectory") or "/"
        volumes = _volumes(files, manifest, entry, app)
        if not flavor.host_view:
            volumes += _etc_files(files, runtime)
        root = RootPlan(
            app=name,
            lower=str(lower),
            upper=str(files.app_upper(name)),
            work=str(files.app_work(name)),
            root=str(files.app_rootfs(name)),
            read_only=bool(entry.get("readOnlyRootFS")),
            volumes=volumes,
            console=None,  # an interactive app's terminal comes from the supervisor (terminal.py)
            host_view=flavor.host_view,
        )

        launch = functools.partial(
            _launch, name, env=env, root=root.root, workdir=workdir, identity=identity, restrictions=restrictions
        )
        handlers = {handler["name"]: handler["exec"] for handler in app.get("eventHandlers") or []}
        plan.run.apps.append(
            AppRun(
                name=name,
                root=root,
                main=launch(app["exec"]),
                pre_start=launch(handlers["pre-start"]) if "pre-start" in handlers else None,
                post_stop=launch(handlers["post-stop"]) if "post-stop" in handlers else None,
                status_path=str(files.app_status(name)),
            )
        )
    return plan
