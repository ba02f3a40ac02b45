"""The supervisor's entry point: `python3 -I -S -c … <pod folder> --lock-fd N [--ready-fd N] [--foreground]`.

Kept apart from supervisor.py so the command line, the cgroups, the metadata service and the audit
records are wired in one place, and the supervisor itself stays a loop over processes and pipes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..audit import AuditLog
from ..errors import RocketError
from ..net.attach import PodNetwork
from ..paths import audit_log_path, hmac_key_path
from ..pod import PodFiles
from .flavor import flavor_named
from .plan import build_plan
from .supervisor import METADATA_PORT, listen_on, supervise

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import List, Optional


def _warn(message: str) -> None:
    sys.stderr.write(f"rocket: warning: {message}\n")


def run_supervisor(
    pod_path: Path, *, lock_fd: int, ready_fd: Optional[int], foreground: bool, journal: bool = False
) -> int:
    """Set up and supervise the pod in `pod_path` (already in run/ and locked through `lock_fd`);
    `foreground` and `journal` say where the apps' output goes besides the logs (supervisor.supervise)."""
    from ..cgroups import PodCgroup, delegated_parent, detect
    from ..fileio import atomic_write
    from ..metadata_token import metadata_url, new_token
    from ..pod import CGROUP_PARENT_FILE

    files = PodFiles(pod_path)
    uuid = pod_path.name
    data_dir = pod_path.parent.parent.parent
    token = new_token()
    cgroup: Optional[PodCgroup] = None
    try:
        layout = detect()
        # Under systemd (INVOCATION_ID is set for units) the pod goes below the unit's delegated cgroup;
        # the pod folder records where, for stop, rm, gc and enter.
        parent = delegated_parent(layout, under_systemd=bool(os.environ.get("INVOCATION_ID")))
        if parent is not None:
            atomic_write(files.root / CGROUP_PARENT_FILE, parent.encode(), durable=False)
        cgroup = PodCgroup(layout, uuid, parent=parent)
        cgroup.create()
    except RocketError as exc:
        _warn(f"no cgroups for pod {uuid}: {exc.message}")
        cgroup = None
    plan = build_plan(files, uuid, metadata_url=metadata_url("127.0.0.1", METADATA_PORT, token), cgroup=cgroup)
    with_metadata = flavor_named(plan.flavor).metadata_service
    listener = None
    if with_metadata and not plan.private_network:
        # On the host's network the well-known port would be shared by every such pod: each gets its own.
        listener = listen_on("127.0.0.1", 0)
        url = metadata_url("127.0.0.1", listener.getsockname()[1], token)
        for run in plan.run.apps:
            for launch in (run.main, run.pre_start, run.post_stop):
                if launch is not None:
                    launch.env["AC_METADATA_URL"] = url
    if not with_metadata:
        for run in plan.run.apps:
            for launch in (run.main, run.pre_start, run.post_stop):
                if launch is not None:
                    launch.env.pop("AC_METADATA_URL", None)
    if cgroup is not None:
        for app, limits in plan.app_limits.items():
            for key, setter in (
                ("memory", cgroup.set_memory_limit),
                ("cpu", cgroup.set_cpu_limit),
                ("cpu_shares", cgroup.set_cpu_shares),
            ):
                if key in limits:
                    try:
                        setter(app, limits[key])
                    except RocketError as exc:
                        plan.warnings.append(f"app {app}: {exc.message}")
    for warning in plan.warnings:
        _warn(warning)

    def start_metadata_service() -> object:
        # Imported when an app first connects (supervise): a pod that never asks never loads it.
        from ..metadata import AppMetadata, MetadataService, load_hmac_key

        return MetadataService(
            pod_uuid=uuid,
            token=token,
            pod_manifest=plan.manifest_bytes,
            apps={
                name: AppMetadata(image_manifest=plan.image_manifests[name], image_id=plan.image_ids[name])
                for name in plan.image_manifests
            },
            hmac_key=load_hmac_key(hmac_key_path(data_dir)),
        )

    try:
        code = supervise(
            plan.run,
            files,
            hostname=plan.hostname,
            private_network=plan.private_network,
            lock_fd=lock_fd,
            foreground=foreground,
            journal=journal,
            metadata=start_metadata_service if with_metadata else None,
            metadata_listener=listener,
            network=PodNetwork(files, uuid, data_dir, plan.runtime),
            adopt_init=cgroup.adopt if cgroup is not None else None,
            ready_fd=ready_fd,
            sysctls=plan.sysctls,
            flavor=plan.flavor,
            interactive=plan.interactive,
        )
    finally:
        if cgroup is not None:
            try:
                cgroup.destroy()
            except RocketError as exc:
                _warn(f"pod {uuid}: {exc.message}")
    AuditLog(audit_log_path(data_dir)).record("pod-exit", pod=uuid, status=str(code))
    return code


def take_lock(pod_path: Path, *, timeout: float = 10.0) -> int:
    """Take the pod's lock over from the command that started us through systemd; the descriptor."""
    import fcntl
    import time

    fd = os.open(pod_path, os.O_RDONLY | os.O_DIRECTORY)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                sys.stderr.write(f"rocket: pod {pod_path.name} stayed locked by another process\n")
                os._exit(254)
            time.sleep(0.01)
    (pod_path / "handover").unlink(missing_ok=True)
    return fd


def main(argv: List[str]) -> None:
    """The detached supervisor process."""
    pod_path = Path(argv[0])
    if "--python-path" in argv:
        sys.path.append(argv[argv.index("--python-path") + 1])
    lock_fd = take_lock(pod_path) if "--take-lock" in argv else int(argv[argv.index("--lock-fd") + 1])
    ready_fd = int(argv[argv.index("--ready-fd") + 1]) if "--ready-fd" in argv else None
    # Under systemd (INVOCATION_ID is set for units) the apps' output goes to the journal too.
    journal = bool(os.environ.get("INVOCATION_ID"))
    try:
        code = run_supervisor(
            pod_path, lock_fd=lock_fd, ready_fd=ready_fd, foreground="--foreground" in argv, journal=journal
        )
    except RocketError as exc:
        sys.stderr.write(f"rocket: {exc}\n")
        code = 254
    sys.stdout.flush()
    os._exit(code)
