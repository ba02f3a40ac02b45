"""A pod manifest from images and rkt's per-app flags, or from a given pod manifest; reified against the store.

    rocket run [POD FLAGS] IMAGE [APP FLAGS] [-- ARGS… [---]] [IMAGE [APP FLAGS] …]

Per-app flags follow the image they apply to (rkt's convention); `--` starts the app's arguments, which
end at `---` or at the end. The result is a reified pod manifest (every image pinned by ID) plus the
list of warnings for isolators rocket will not enforce.
"""

from __future__ import annotations

import json

from . import AC_VERSION
from .errors import ManifestError, UsageError
from .manifest import validate_pod_manifest
from .names import app_name_from_image
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

# Per-app flags with a value, by rkt's names.
APP_FLAGS = (
    "exec",
    "set-env",
    "user",
    "group",
    "mount",
    "memory",
    "cpu",
    "caps-retain",
    "caps-remove",
    "seccomp",
    "name",
    "working-dir",
    "supplementary-gids",
    "oom-score-adj",
    "cpu-shares",
)
APP_SWITCHES = ("readonly-rootfs",)


class AppRequest(Record):
    """One app as given on the command line."""

    FIELDS = ("image", "flags", "args", "readonly_rootfs")

    def __init__(
        self,
        image: str,
        flags: Optional[Dict[str, List[str]]] = None,
        args: Optional[List[str]] = None,
        readonly_rootfs: bool = False,
    ) -> None:
        self.image = image
        self.flags = {} if flags is None else flags
        self.args = args
        self.readonly_rootfs = readonly_rootfs

    def one(self, flag: str) -> Optional[str]:
        values = self.flags.get(flag)
        return values[-1] if values else None


def parse_app_section(words: List[str]) -> List[AppRequest]:
    """Split `IMAGE [APP FLAGS] [-- ARGS [---]] …` into app requests."""
    apps: List[AppRequest] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            if not apps:
                raise UsageError("'--' (app arguments) before any image")
            end = words.index("---", index + 1) if "---" in words[index + 1 :] else len(words)
            apps[-1].args = words[index + 1 : end]
            index = end + 1
            continue
        if word == "---":
            # rkt's `---` only ends the arguments after `--`; apps simply follow one another.
            raise UsageError(
                "'---' ends an app's arguments, given after '--'",
                hint="start the next app with its image: IMAGE [APP FLAGS]",
            )
        if word.startswith("--"):
            if not apps:
                raise UsageError(f"{word} is a per-app flag and must follow an image")
            key, has_value, value = word[2:].partition("=")
            if key in APP_SWITCHES:
                apps[-1].readonly_rootfs = value.lower() not in ("false", "0") if has_value else True
            elif key in APP_FLAGS:
                if not has_value:
                    if index + 1 >= len(words):
                        raise UsageError(f"--{key} needs a value")
                    index += 1
                    value = words[index]
                apps[-1].flags.setdefault(key, []).append(value)
            else:
                raise UsageError(f"unknown per-app flag --{key}", hint="per-app flags: " + ", ".join(APP_FLAGS))
            index += 1
            continue
        apps.append(AppRequest(image=word))
        index += 1
    if not apps:
        raise UsageError("no image to run", hint="rocket run IMAGE [APP FLAGS] …")
    return apps


def parse_key_values(text: str, *, flag: str) -> Dict[str, str]:
    """`a=b,c=d` (rkt's volume and mount syntax); the first item may be a bare name (`NAME,kind=host`)."""
    values: Dict[str, str] = {}
    for index, item in enumerate(part for part in text.split(",") if part):
        key, has_value, value = item.partition("=")
        if not has_value:
            if index == 0:
                values["name"] = key
                continue
            raise UsageError(f"{flag}: {item!r} is not key=value", hint=f"write {flag}=name,kind=host,source=/path")
        values[key] = value
    return values


def volume_from_flag(text: str) -> Dict[str, Any]:
    """`--volume=NAME,kind=host,source=/srv,readOnly=true` or `NAME,kind=empty,mode=0755,uid=0,gid=0`."""
    values = parse_key_values(text, flag="--volume")
    volume: Dict[str, Any] = {"name": values.pop("name", ""), "kind": values.pop("kind", "host")}
    for key, value in values.items():
        if key in ("readOnly", "recursive"):
            volume[key] = value.lower() in ("true", "1", "yes")
        elif key in ("uid", "gid"):
            if not value.isdigit():
                raise UsageError(f"--volume: {key} must be a number, not {value!r}")
            volume[key] = int(value)
        elif key in ("source", "mode"):
            volume[key] = value
        else:
            raise UsageError(
                f"--volume: unknown key {key!r}", hint="keys: kind, source, readOnly, recursive, mode, uid, gid"
            )
    return volume


def _isolator(name: str, value: Any) -> Dict[str, Any]:
    return {"name": name, "value": value}


def _app_overrides(request: AppRequest, image_app: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The pod manifest's `app` for one request: the image's app with the flags applied (rkt's order)."""
    # A deep copy of JSON data, without the copy module (and weakref) on the pod-start path.
    app: Dict[str, Any] = json.loads(json.dumps(image_app)) if image_app else {"user": "0", "group": "0"}
    exec_flag = request.one("exec")
    if exec_flag is not None:
        app["exec"] = [exec_flag] + (request.args or [])
    elif request.args is not None:
        if not app.get("exec"):
            raise UsageError(f"{request.image} has no exec to pass arguments to", hint="give --exec")
        app["exec"] = [app["exec"][0]] + request.args
    if not app.get("exec"):
        raise UsageError(f"{request.image} has no app to run", hint="give --exec=/path/to/program")
    for key in ("user", "group"):
        if request.one(key) is not None:
            app[key] = request.one(key)
    if request.one("working-dir") is not None:
        app["workingDirectory"] = request.one("working-dir")
    if request.flags.get("supplementary-gids"):
        app["supplementaryGIDs"] = [int(g) for g in ",".join(request.flags["supplementary-gids"]).split(",") if g]
    environment = {item["name"]: item["value"] for item in app.get("environment") or []}
    for assignment in request.flags.get("set-env", []):
        key, has_value, value = assignment.partition("=")
        if not has_value or not key:
            raise UsageError(f"--set-env={assignment!r} is not NAME=VALUE")
        environment[key] = value
    if environment:
        app["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    isolators: List[Dict[str, Any]] = list(app.get("isolators") or [])

    def replace(name: str, value: Any) -> None:
        isolators[:] = [item for item in isolators if item.get("name") != name]
        isolators.append(_isolator(name, value))

    if request.one("memory") is not None:
        replace("resource/memory", {"limit": request.one("memory")})
    if request.one("cpu") is not None:
        replace("resource/cpu", {"limit": request.one("cpu")})
    if request.one("caps-retain") is not None:
        isolators[:] = [i for i in isolators if not i.get("name", "").startswith("os/linux/capabilities-")]
        isolators.append(_isolator("os/linux/capabilities-retain-set", {"set": _caps(request.one("caps-retain"))}))
    if request.one("caps-remove") is not None:
        isolators[:] = [i for i in isolators if not i.get("name", "").startswith("os/linux/capabilities-")]
        isolators.append(_isolator("os/linux/capabilities-remove-set", {"set": _caps(request.one("caps-remove"))}))
    if request.one("oom-score-adj") is not None:
        replace("os/linux/oom-score-adj", int(request.one("oom-score-adj") or 0))
    if request.one("cpu-shares") is not None:
        replace("os/linux/cpu-shares", int(request.one("cpu-shares") or 0))
    if isolators:
        app["isolators"] = isolators
    return app


def _caps(text: Optional[str]) -> List[str]:
    names = [name.strip().upper() for name in (text or "").split(",") if name.strip()]
    return [name if name.startswith("CAP_") else "CAP_" + name for name in names]


def build_pod_manifest(
    requests: List[AppRequest],
    resolved: List[Dict[str, Any]],
    *,
    volumes: List[Dict[str, Any]],
    annotations: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """A reified pod manifest: `resolved[i]` is {id, name, labels, manifest} for `requests[i]`."""
    apps: List[Dict[str, Any]] = []
    for request, image in zip(requests, resolved):
        name = request.one("name") or app_name_from_image(image["name"])
        if any(app["name"] == name for app in apps):
            raise UsageError(f"two apps are named {name!r}", hint="give one of them --name")
        entry: Dict[str, Any] = {
            "name": name,
            "image": {"id": image["id"], "name": image["name"]},
            "app": _app_overrides(request, image["manifest"].get("app")),
        }
        if image.get("labels"):
            entry["image"]["labels"] = [{"name": k, "value": v} for k, v in image["labels"].items()]
        mounts = []
        for text in request.flags.get("mount", []):
            values = parse_key_values(text, flag="--mount")
            if "volume" not in values or "target" not in values:
                raise UsageError(
                    f"--mount={text!r} needs volume= and target=", hint="--mount=volume=data,target=/var/data"
                )
            mounts.append({"volume": values["volume"], "path": values["target"]})
        if mounts:
            entry["mounts"] = mounts
        if request.readonly_rootfs:
            entry["readOnlyRootFS"] = True
        apps.append(entry)
    manifest: Dict[str, Any] = {"acKind": "PodManifest", "acVersion": AC_VERSION, "apps": apps}
    if volumes:
        manifest["volumes"] = volumes
    if annotations:
        manifest["annotations"] = [{"name": k, "value": v} for k, v in annotations.items()]
    try:
        validate_pod_manifest(manifest, reified=True)
    except ManifestError as exc:
        raise UsageError(f"the flags make an invalid pod: {exc.message}", hint="check the per-app flags") from exc
    return manifest
