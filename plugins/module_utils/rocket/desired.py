"""Declared pods: a host's desired set, made real idempotently (the `pod` and `pods` modules, `rocket boot`).

A pod spec is a plain dict (the modules' `pods` entries; see `normalize`). Its canonical form, without
`state`, hashes to a digest; a pod started from it carries two annotations, `appc.rocket/name` and
`appc.rocket/desired` (the digest), and `<dir>/desired/<name>.json` keeps the spec, the digest, the
image IDs it resolved to and the wanted state. A pod is replaced only when the digest or a resolved
image changes; nothing is re-derived from the running system. The spec becomes rkt's `run` flags, so a
declared pod means exactly what the same flags mean on the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import NotFoundError, RocketError, UsageError
from .fileio import atomic_write
from .pod import GARBAGE, Pod

NAME_ANNOTATION = "appc.rocket/name"
DIGEST_ANNOTATION = "appc.rocket/desired"
STATES = ("running", "stopped", "absent")
POD_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

POD_KEYS = {
    "name": str,
    "state": str,
    "apps": list,
    "volumes": list,
    "net": list,
    "ports": list,
    "dns": list,
    "dns_search": list,
    "dns_opt": list,
    "dns_domain": str,
    "hosts_entries": list,
    "hostname": str,
    "restart": str,
    "flavor": str,
    "stop_timeout": (int, float),
    "annotations": dict,
}
APP_KEYS = {
    "image": str,
    "name": str,
    "exec": list,
    "environment": dict,
    "user": str,
    "group": str,
    "working_dir": str,
    "memory": str,
    "cpu": str,
    "cpu_shares": int,
    "oom_score_adj": int,
    "caps_retain": list,
    "caps_remove": list,
    "seccomp": str,
    "readonly_rootfs": bool,
    "mounts": list,
    "supplementary_gids": list,
}
DEFAULTS: Dict[str, Any] = {"state": "running", "net": ["default"], "restart": "always", "flavor": "ns"}


def desired_dir(data_dir: Path) -> Path:
    """`<dir>/desired`: one record per declared pod."""
    return data_dir / "desired"


def _check_keys(value: Dict[str, Any], allowed: Dict[str, Any], where: str) -> None:
    for key, item in value.items():
        if key not in allowed:
            raise UsageError(f"{where}: unknown key {key!r}", hint=f"known: {', '.join(sorted(allowed))}")
        if item is not None and not isinstance(item, allowed[key]):
            raise UsageError(f"{where}.{key}: wrong type {type(item).__name__}")


def normalize(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The canonical form of a pod spec: checked, defaults filled in, empty values dropped."""
    if not isinstance(spec, dict):
        raise UsageError("a pod spec must be a mapping")
    name = spec.get("name")
    where = f"pod {name!r}"
    if not isinstance(name, str) or not POD_NAME.match(name):
        raise UsageError(f"{where}: a pod name is lower-case letters, digits and '-' (at most 63)")
    _check_keys(spec, POD_KEYS, where)
    result: Dict[str, Any] = {key: value for key, value in spec.items() if value not in (None, [], {}, "")}
    for key, value in DEFAULTS.items():
        result.setdefault(key, value)
    if isinstance(result["net"], str):
        result["net"] = [result["net"]]
    if result["state"] not in STATES:
        raise UsageError(f"{where}: state must be one of {', '.join(STATES)}")
    if result["state"] != "absent":
        apps = result.get("apps") or []
        if not apps:
            raise UsageError(f"{where}: give at least one app")
        normalized_apps = []
        for index, app in enumerate(apps):
            if not isinstance(app, dict) or not isinstance(app.get("image"), str):
                raise UsageError(f"{where}.apps[{index}]: each app needs an image")
            _check_keys(app, APP_KEYS, f"{where}.apps[{index}]")
            normalized_apps.append({k: v for k, v in app.items() if v not in (None, [], {}, "")})
        result["apps"] = normalized_apps
    return result


def digest(spec: Dict[str, Any]) -> str:
    """The identity of a desired pod: its canonical spec without `state`."""
    body = {key: value for key, value in spec.items() if key != "state"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_arguments(spec: Dict[str, Any], image_ids: List[str]) -> argparse.Namespace:
    """The spec as the parsed flags of `rocket run`, each image pinned to its resolved ID."""
    words: List[str] = []
    for app, image_id in zip(spec["apps"], image_ids):
        words.append(image_id)
        if app.get("name"):
            words.append(f"--name={app['name']}")
        for key, value in sorted((app.get("environment") or {}).items()):
            words.append(f"--set-env={key}={value}")
        for key in ("user", "group", "memory", "cpu", "seccomp"):
            if app.get(key) is not None:
                words.append(f"--{key}={app[key]}")
        for key, flag in (
            ("working_dir", "working-dir"),
            ("cpu_shares", "cpu-shares"),
            ("oom_score_adj", "oom-score-adj"),
        ):
            if app.get(key) is not None:
                words.append(f"--{flag}={app[key]}")
        for key, flag in (("caps_retain", "caps-retain"), ("caps_remove", "caps-remove")):
            if app.get(key):
                words.append(f"--{flag}={','.join(app[key])}")
        if app.get("supplementary_gids"):
            words.append(f"--supplementary-gids={','.join(str(g) for g in app['supplementary_gids'])}")
        for mount in app.get("mounts") or []:
            words.append(f"--mount=volume={mount['volume']},target={mount['path']}")
        if app.get("readonly_rootfs"):
            words.append("--readonly-rootfs")
        if app.get("exec"):
            words += [f"--exec={app['exec'][0]}", "--", *[str(a) for a in app["exec"][1:]], "---"]
    volumes = []
    for volume in spec.get("volumes") or []:
        parts = [volume["name"], f"kind={volume.get('kind', 'host')}"]
        for key in ("source", "mode", "uid", "gid"):
            if volume.get(key) is not None:
                parts.append(f"{key}={volume[key]}")
        if volume.get("read_only"):
            parts.append("readOnly=true")
        volumes.append(",".join(parts))
    ports = []
    for port in spec.get("ports") or []:
        host = f"{port['host_ip']}:" if port.get("host_ip") else ""
        ports.append(f"{port['name']}:{host}{port['host_port']}")
    return argparse.Namespace(
        pod_manifest=None,
        apps=words,
        volume=volumes,
        hostname=spec.get("hostname", ""),
        flavor=spec.get("flavor", "ns"),
        restart=spec.get("restart", "always"),
        net=",".join(spec.get("net") or ["default"]),
        port=ports,
        dns=list(spec.get("dns") or []),
        dns_search=list(spec.get("dns_search") or []),
        dns_opt=list(spec.get("dns_opt") or []),
        dns_domain=spec.get("dns_domain", ""),
        hosts_entry=list(spec.get("hosts_entries") or []),
        uuid_file_save=None,
        stop_timeout=float(spec.get("stop_timeout", 10.0)),
        pull_policy="never",
        interactive=False,
    )


@dataclass
class Outcome:
    """What converging one declared pod did (or, in check mode, would do)."""

    name: str
    action: str  # unchanged, created, replaced, started, stopped, removed
    uuid: Optional[str] = None
    state: str = ""
    image_ids: List[str] = field(default_factory=list)
    networks: List[Dict[str, str]] = field(default_factory=list)
    before: Optional[Dict[str, Any]] = None
    after: Optional[Dict[str, Any]] = None
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"

    def to_json(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "changed": self.changed,
            "uuid": self.uuid,
            "state": self.state,
            "image_ids": self.image_ids,
            "networks": self.networks,
            "reason": self.reason,
        }


def pod_annotations(pod: Pod) -> Dict[str, str]:
    try:
        manifest = json.loads(pod.files.manifest.read_bytes())
    except (OSError, ValueError):
        return {}
    return {str(item.get("name")): str(item.get("value")) for item in manifest.get("annotations") or []}


def managed_pods(data_dir: Path) -> Dict[str, List[Pod]]:
    """Every pod that carries a declared name, by name, oldest first (garbage excluded)."""
    found: Dict[str, List[Tuple[float, Pod]]] = {}
    for pod in Pod.all(data_dir):
        if pod.state == GARBAGE:
            continue
        name = pod_annotations(pod).get(NAME_ANNOTATION)
        if name:
            found.setdefault(name, []).append((pod.created(), pod))
    return {name: [pod for _created, pod in sorted(pods, key=lambda item: item[0])] for name, pods in found.items()}


def read_record(data_dir: Path, name: str) -> Optional[Dict[str, Any]]:
    try:
        return dict(json.loads((desired_dir(data_dir) / f"{name}.json").read_bytes()))
    except (OSError, ValueError):
        return None


def write_record(data_dir: Path, spec: Dict[str, Any], image_ids: List[str], *, insecure_image: bool) -> None:
    folder = desired_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {
        "spec": spec,
        "digest": digest(spec),
        "image_ids": image_ids,
        "state": spec["state"],
        "insecure_image": insecure_image,  # the operator's word for these images, which boot repeats
    }
    atomic_write(folder / f"{spec['name']}.json", json.dumps(record, indent=2, sort_keys=True).encode())


def remove_record(data_dir: Path, name: str) -> None:
    (desired_dir(data_dir) / f"{name}.json").unlink(missing_ok=True)


class Converger:
    """Makes declared pods real on one host; `check=True` only says what it would do.

    `resolve(reference, check)` turns an image reference into an image ID (fetching, with trust, when
    not in check mode; None in check mode if it would have to fetch); `engine()` gives the folder the
    supervisors run from, asked only when a pod starts (the modules install their engine copy then).
    """

    def __init__(
        self,
        ctx: Any,
        *,
        resolve: Callable[[str, bool], Optional[str]],
        check: bool = False,
        engine: Optional[Callable[[], Optional[str]]] = None,
        insecure_image: bool = False,
    ) -> None:
        self.ctx = ctx
        self.data_dir = Path(ctx.data_dir)
        self.resolve = resolve
        self.check = check
        self.engine = engine
        self.insecure_image = insecure_image
        self._managed: Optional[Dict[str, List[Pod]]] = None

    @property
    def managed(self) -> Dict[str, List[Pod]]:
        if self._managed is None:
            self._managed = managed_pods(self.data_dir)
        return self._managed

    def converge(self, raw: Dict[str, Any]) -> Outcome:
        spec = normalize(raw)
        name = spec["name"]
        pods = self.managed.get(name, [])
        running = [pod for pod in pods if pod.is_running()]
        record = read_record(self.data_dir, name)
        before = record.get("spec") if record else None
        if spec["state"] == "absent":
            if not pods and record is None:
                return Outcome(name, "unchanged", state="absent")
            if not self.check:
                self._remove(pods)
                remove_record(self.data_dir, name)
            return Outcome(name, "removed", state="absent", before=before, after=None)
        image_ids: List[str] = []
        unresolved = False
        for app in spec["apps"]:
            image_id = self.resolve(app["image"], self.check)
            if image_id is None:
                unresolved = True  # check mode: it would be fetched
            image_ids.append(image_id or "")
        wanted = digest(spec)
        current = running[-1] if running else None
        same = (
            current is not None
            and pod_annotations(current).get(DIGEST_ANNOTATION) == wanted
            and not unresolved
            and self._image_ids(current) == image_ids
        )
        if spec["state"] == "stopped":
            if not running and record is not None and record.get("state") == "stopped":
                return Outcome(name, "unchanged", state="stopped", before=before, after=spec)
            if not self.check:
                self._stop(running)
                write_record(self.data_dir, spec, image_ids, insecure_image=self.insecure_image)
            return Outcome(name, "stopped", state="stopped", before=before, after=spec)
        if same and current is not None:
            if not self.check and (record is None or record.get("digest") != wanted or len(running) > 1):
                self._remove(running[:-1])  # an earlier replacement left a twin: keep the newest
                write_record(self.data_dir, spec, image_ids, insecure_image=self.insecure_image)
            return Outcome(
                name, "unchanged", uuid=current.uuid, state="running", image_ids=image_ids,
                networks=self._networks(current), before=before, after=spec,
            )  # fmt: skip
        action = "replaced" if running else ("started" if pods else "created")
        reason = self._why(current, wanted, image_ids, unresolved)
        if self.check:
            return Outcome(name, action, state="running", image_ids=image_ids, before=before, after=spec, reason=reason)
        # The old pod goes first: it may hold the host ports and the requested addresses of the new one.
        self._remove(pods)
        pod = self._start(spec, image_ids, wanted)
        write_record(self.data_dir, spec, image_ids, insecure_image=self.insecure_image)
        return Outcome(
            name, action, uuid=pod.uuid, state="running", image_ids=image_ids,
            networks=self._networks(pod), before=before, after=spec, reason=reason,
        )  # fmt: skip

    def remove_others(self, keep: List[str]) -> List[Outcome]:
        """`exclusive`: stop and remove every declared pod whose name is not in `keep`."""
        outcomes = []
        names = set(self.managed) | {p.stem for p in desired_dir(self.data_dir).glob("*.json")}
        for name in sorted(names - set(keep)):
            record = read_record(self.data_dir, name)
            if not self.check:
                self._remove(self.managed.get(name, []))
                remove_record(self.data_dir, name)
            outcomes.append(Outcome(name, "removed", state="absent", before=record.get("spec") if record else None))
        return outcomes

    # -- the work ---------------------------------------------------------------------------------

    def _why(self, current: Optional[Pod], wanted: str, image_ids: List[str], unresolved: bool) -> str:
        if current is None:
            return "no running pod of this name"
        if pod_annotations(current).get(DIGEST_ANNOTATION) != wanted:
            return "its declared state changed"
        if unresolved:
            return "an image would be fetched"
        return "an image resolves to another ID now"

    @staticmethod
    def _image_ids(pod: Pod) -> List[str]:
        try:
            manifest = json.loads(pod.files.manifest.read_bytes())
        except (OSError, ValueError):
            return []
        return [str(app["image"]["id"]) for app in manifest.get("apps") or []]

    @staticmethod
    def _networks(pod: Pod) -> List[Dict[str, str]]:
        from .lifecycle import status

        return list(status(pod).get("networks") or [])

    def _stop(self, pods: List[Pod]) -> None:
        from .lifecycle import stop

        alive = [pod for pod in pods if pod.is_running()]
        if alive:
            stop(alive)

    def _remove(self, pods: List[Pod]) -> None:
        from .lifecycle import remove

        self._stop(pods)
        for pod in pods:
            try:
                remove(pod)
            except NotFoundError:
                continue

    def _start(self, spec: Dict[str, Any], image_ids: List[str], wanted: str) -> Pod:
        from .cli.podflags import pod_from_flags
        from .lifecycle import prepare, start

        manifest, options = pod_from_flags(run_arguments(spec, image_ids), self.ctx)
        annotations = [
            {"name": key, "value": str(value)} for key, value in sorted((spec.get("annotations") or {}).items())
        ]
        annotations += [{"name": NAME_ANNOTATION, "value": spec["name"]}, {"name": DIGEST_ANNOTATION, "value": wanted}]
        manifest["annotations"] = annotations
        pod = prepare(
            self.ctx.store(),
            manifest,
            options,
            insecure_image=self.insecure_image,
            config_dirs=self.ctx.config_dirs(),
        )
        try:
            start(pod, detach=True, engine=self.engine() if self.engine is not None else None)
        except RocketError:
            from .lifecycle import remove

            remove(pod)
            raise
        return pod


def recorded_ids(recorded: Dict[str, str]) -> Callable[[str, bool], Optional[str]]:
    """A resolver that only knows the image IDs a record holds."""

    def resolve(reference: str, _check: bool) -> Optional[str]:
        return recorded.get(reference)

    return resolve


def boot(ctx: Any) -> List[Outcome]:
    """Start again, from their records, the declared pods that should run and do not (a boot service).

    Images are taken from the store by the IDs recorded: a boot never fetches.
    """
    outcomes = []
    for path in sorted(desired_dir(Path(ctx.data_dir)).glob("*.json")):
        record = read_record(Path(ctx.data_dir), path.stem)
        if not record or record.get("state") != "running":
            continue
        recorded: Dict[str, str] = dict(
            zip([app["image"] for app in record["spec"]["apps"]], record.get("image_ids") or [])
        )
        converger = Converger(
            ctx,
            resolve=recorded_ids(recorded),
            insecure_image=bool(record.get("insecure_image")),
        )
        try:
            outcomes.append(converger.converge(record["spec"]))
        except RocketError as exc:
            outcomes.append(Outcome(path.stem, "failed", reason=exc.message))
    return outcomes
