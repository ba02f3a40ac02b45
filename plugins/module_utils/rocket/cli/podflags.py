"""The flags `prepare` and `run` share: pod-level flags, then images with their per-app flags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

from ..errors import ManifestError, NotFoundError, UsageError
from ..lifecycle import FLAVORS, NET_MODES, RESTART_POLICIES, PodOptions
from ..manifest import load_pod_manifest
from ..podspec import AppRequest, build_pod_manifest, parse_app_section, volume_from_flag
from .context import Context


def add_pod_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pod-manifest", help="run this pod manifest instead of images given here")
    parser.add_argument("--volume", action="append", default=[], help="NAME,kind=host,source=PATH[,readOnly=true]")
    parser.add_argument("--hostname", default="", help="the pod's hostname (default rocket-UUID)")
    parser.add_argument(
        "--flavor", choices=FLAVORS, default="ns", help="isolation: ns (namespaces, the default) or fly (chroot only)"
    )
    parser.add_argument("--restart", choices=RESTART_POLICIES, default="no", help="restart policy (default no)")
    parser.add_argument("--net", choices=NET_MODES, default="none", help="network (default none: loopback only)")
    parser.add_argument("--uuid-file-save", help="write the pod's UUID to this file")
    parser.add_argument("--stop-timeout", type=float, default=10.0, help="seconds between TERM and KILL")
    parser.add_argument("--pull-policy", choices=("new", "update", "never"), default="new")
    parser.add_argument("apps", nargs=argparse.REMAINDER, metavar="IMAGE [APP FLAGS] [-- ARGS [---]] ...")


def _seccomp_flags(requests: List[AppRequest], manifest: Dict[str, Any]) -> Dict[str, str]:
    return {
        app["name"]: request.one("seccomp") or ""
        for request, app in zip(requests, manifest["apps"])
        if request.one("seccomp")
    }


def pod_from_flags(args: argparse.Namespace, ctx: Context) -> Tuple[Dict[str, Any], PodOptions]:
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
    options.seccomp = _seccomp_flags(requests, manifest)
    return manifest, options


def save_uuid(args: argparse.Namespace, uuid: str) -> None:
    if args.uuid_file_save:
        Path(args.uuid_file_save).write_text(uuid + "\n")
