"""The flags `prepare` and `run` share: pod-level flags, then images with their per-app flags."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from ..errors import ManifestError, NotFoundError, UsageError
from ..lifecycle import DEFAULT_STOP_TIMEOUT, FLAVORS, RESTART_POLICIES, PodOptions
from ..manifest import load_pod_manifest
from ..net.dns import options_from_flags
from ..podspec import AppRequest, build_pod_manifest, parse_app_section, volume_from_flag
from .context import Context
from .flagspec import APPEND, Flag, add_flags

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple


POD_FLAGS = (
    Flag("--pod-manifest", help="run this pod manifest instead of images given here"),
    Flag("--volume", APPEND, help="NAME,kind=host,source=PATH[,readOnly=true]"),
    Flag("--hostname", default="", help="the pod's hostname (default rocket-UUID)"),
    Flag(
        "--flavor", choices=FLAVORS, default="ns", help="isolation: ns (namespaces, the default) or fly (chroot only)"
    ),
    Flag("--restart", choices=RESTART_POLICIES, default="no", help="restart policy (default no)"),
    Flag(
        "--net",
        default="default",
        help="default (the default: rocket0, 172.16.28.0/24), none (loopback only), host, or net.d names: "
        "a,b or name:IP=ADDRESS",
    ),
    Flag("--port", APPEND, metavar="NAME:[HOSTIP:]HOSTPORT", help="forward a host port to a pod port"),
    Flag("--dns", APPEND, help="a name server, host, or none (repeatable)"),
    Flag("--dns-search", APPEND, help="a DNS search domain (repeatable)"),
    Flag("--dns-opt", APPEND, help="a resolv.conf option (repeatable)"),
    Flag("--dns-domain", default="", help="the resolv.conf domain"),
    Flag("--hosts-entry", APPEND, metavar="IP=HOST|host", help="an /etc/hosts line, or host's own"),
    Flag("--uuid-file-save", help="write the pod's UUID to this file"),
    Flag("--stop-timeout", convert=float, default=DEFAULT_STOP_TIMEOUT, help="seconds between TERM and KILL"),
    Flag("--pull-policy", choices=("new", "update", "never"), default="new"),
)
APPS = "apps"  # everything from the first image on: images with their per-app flags (podspec.py)


def add_pod_flags(parser: Any) -> None:
    """The pod flags and the images section, on an argparse parser."""
    import argparse

    add_flags(parser, POD_FLAGS)
    parser.add_argument(APPS, nargs=argparse.REMAINDER, metavar="IMAGE [APP FLAGS] [-- ARGS [---]] ...")


def _seccomp_flags(requests: List[AppRequest], manifest: Dict[str, Any]) -> Dict[str, str]:
    return {
        app["name"]: request.one("seccomp") or ""
        for request, app in zip(requests, manifest["apps"])
        if request.one("seccomp")
    }


def port_from_flag(value: str) -> Dict[str, Any]:
    """`--port=NAME:[HOSTIP:]HOSTPORT` as a pod manifest `ports` entry."""
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise UsageError(f"--port={value}: expected NAME:[HOSTIP:]HOSTPORT", hint="e.g. --port=http:8080")
    try:
        host_port = int(parts[-1])
    except ValueError:
        host_port = 0
    if not 1 <= host_port <= 65535:
        raise UsageError(f"--port={value}: {parts[-1]!r} is not a port number from 1 to 65535")
    entry: Dict[str, Any] = {"name": parts[0], "hostPort": host_port}
    if len(parts) == 3:
        try:
            entry["hostIP"] = str(ipaddress.IPv4Address(parts[1]))
        except ValueError as exc:
            raise UsageError(f"--port={value}: {parts[1]!r} is not an IPv4 address") from exc
    return entry


def pod_from_flags(args: Any, ctx: Context) -> Tuple[Dict[str, Any], PodOptions]:
    """Fetch (trust applies) and resolve every image, and make the reified pod manifest and options."""
    store = ctx.store()
    fetchers: List[Any] = []

    def find(reference: str) -> str:
        """The image ID for a reference: from the store when the pull policy allows, else fetched."""
        if args.pull_policy != "update" and not reference.startswith(("/", "./", "https://", "http://", "file://")):
            try:
                return store.resolve(reference).id
            except (NotFoundError, UsageError):
                pass
        if not fetchers:
            from ..fetch import Fetcher  # the trust and network stack, only when something is fetched

            fetchers.append(
                Fetcher(
                    store,
                    local_config=ctx.local_config,
                    system_config=ctx.system_config,
                    insecure=ctx.insecure,
                    pull_policy=args.pull_policy,
                )
            )
        return str(fetchers[0].fetch(reference).record.id)

    options = PodOptions(
        hostname=args.hostname,
        flavor=args.flavor,
        restart=args.restart,
        net=args.net,
        dns=options_from_flags(args.dns, args.dns_search, args.dns_opt, args.dns_domain, args.hosts_entry),
        stop_timeout=args.stop_timeout,
        interactive=bool(getattr(args, "interactive", False)),
    )
    if args.pod_manifest:
        if args.apps:
            raise UsageError("give either --pod-manifest or images, not both")
        try:
            data = Path(args.pod_manifest).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.pod_manifest}: {exc.strerror}") from exc
        manifest = load_pod_manifest(data, where=args.pod_manifest)
        for app in manifest["apps"]:
            image = app["image"]
            if not image.get("id"):
                labels = "".join(f",{item['name']}={item['value']}" for item in image.get("labels") or [])
                image["id"] = find(image["name"] + labels)
            else:
                store.resolve(image["id"])
        try:
            manifest.setdefault("ports", []).extend(port_from_flag(text) for text in args.port)
            load_pod_manifest(json.dumps(manifest).encode(), where=args.pod_manifest, reified=True)
        except ManifestError as exc:
            raise UsageError(exc.message) from exc
        return manifest, options
    requests = parse_app_section(args.apps)
    resolved = []
    for request in requests:
        record = store.index.get(find(request.image))
        if record is None:
            raise AssertionError(f"bug: image {request.image} vanished right after it was found")
        resolved.append(
            {"id": record.id, "name": record.name, "labels": record.labels, "manifest": store.manifest(record.id)}
        )
    volumes = [volume_from_flag(text) for text in args.volume]
    manifest = build_pod_manifest(requests, resolved, volumes=volumes)
    if args.port:
        manifest["ports"] = [port_from_flag(text) for text in args.port]
    options.seccomp = _seccomp_flags(requests, manifest)
    return manifest, options


def save_uuid(args: Any, uuid: str) -> None:
    if args.uuid_file_save:
        Path(args.uuid_file_save).write_text(uuid + "\n")
