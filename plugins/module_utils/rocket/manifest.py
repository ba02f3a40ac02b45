"""Image and pod manifests: parse the JSON and check it against the appc specification 0.8.11.

Every rejection is a ManifestError whose `field` is the JSON path of the offending value
(`app.isolators[2].value.limit`, `apps[1].name`); no JSON input, however malformed, raises anything else.
Members the specification does not define are accepted and ignored, as the Go reference (encoding/json)
does: a manifest written for a later 0.x version must still load (forward compatibility).
Where the Go reference writes JSON null for an empty optional list, null is read as "absent".
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse

from .errors import ManifestError
from .isolators import check_isolators
from .names import (
    check_ac_identifier,
    check_ac_name,
    check_hash,
    check_labels,
    child,
    expect_bool,
    expect_int,
    expect_list,
    expect_object,
    expect_string,
    is_full_image_id,
    item,
    require,
    show,
)
from .patterns import LazyPattern

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any

IMAGE_MANIFEST = "ImageManifest"
POD_MANIFEST = "PodManifest"

_DIGITS = frozenset("0123456789")
_SEMVER_IDENTIFIER = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")
_ENV_NAME_RE = LazyPattern(r"[A-Za-z_][A-Za-z0-9_]*")
_RFC3339_RE = LazyPattern(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})(\.[0-9]+)?"
    r"(Z|[+-](?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
)
_MODE_RE = LazyPattern(r"[0-7]{1,4}")
_EVENT_HANDLERS = ("pre-start", "post-stop")
_PROTOCOLS = ("tcp", "udp")
_MAX_PORT = 65535


# --- Loading ---------------------------------------------------------------------------------------


def _parse_json(data: bytes, *, where: str) -> dict[str, Any]:
    """Parse manifest bytes into a JSON object; any failure is a ManifestError with field ""."""

    def refuse_constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{where}: manifest is not UTF-8 (byte {exc.start})", field="", rule="json", where=where
        ) from exc
    try:
        obj = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{where}: manifest is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            field="",
            rule="json",
            where=where,
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{where}: manifest is not valid JSON: {exc}", field="", rule="json", where=where) from exc
    if not isinstance(obj, dict):
        raise ManifestError(
            f"{where}: manifest must be a JSON object, not {show(obj)}", field="", rule="type", where=where
        )
    return obj


def _located(exc: ManifestError, where: str) -> ManifestError:
    """The same error with the manifest's location in front of its message."""
    return ManifestError(f"{where}: {exc.message}", field=exc.field, rule=exc.rule, hint=exc.hint, where=where)


def load_image_manifest(data: bytes, *, where: str) -> dict[str, Any]:
    """Parse and validate an image manifest; `where` (a path, an image ID) prefixes error messages."""
    obj = _parse_json(data, where=where)
    try:
        validate_image_manifest(obj)
    except ManifestError as exc:
        raise _located(exc, where) from None
    return obj


def load_pod_manifest(data: bytes, *, where: str, reified: bool = False) -> dict[str, Any]:
    """Parse and validate a pod manifest; with `reified`, every app image must be pinned by full ID."""
    obj = _parse_json(data, where=where)
    try:
        validate_pod_manifest(obj, reified=reified)
    except ManifestError as exc:
        raise _located(exc, where) from None
    return obj


def load_any_manifest(data: bytes, *, where: str) -> tuple[str, dict[str, Any]]:
    """Parse and validate either kind of manifest; return its acKind and the object."""
    obj = _parse_json(data, where=where)
    kind = obj.get("acKind")
    try:
        if kind == IMAGE_MANIFEST:
            validate_image_manifest(obj)
        elif kind == POD_MANIFEST:
            validate_pod_manifest(obj)
        else:
            raise ManifestError(
                f"acKind must be {IMAGE_MANIFEST} or {POD_MANIFEST}, not {show(kind)}", field="acKind", rule="kind"
            )
    except ManifestError as exc:
        raise _located(exc, where) from None
    return str(kind), obj


def image_labels(manifest: dict[str, Any]) -> dict[str, str]:
    """Labels of a validated image manifest as a dict (empty if it has none)."""
    return {entry["name"]: entry["value"] for entry in manifest.get("labels") or []}


# --- Shared pieces ---------------------------------------------------------------------------------


def is_semver(version: str) -> bool:
    """A semantic version as the Go reference reads it (coreos/go-semver): three numbers, optional
    pre-release and build metadata, the pattern
    `[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?`
    checked by hand: every pod start reads a manifest, and compiling it cost ~0.4 ms."""
    rest, plus, build = version.partition("+")
    core, dash, pre_release = rest.partition("-")  # the numbers hold no dash: the first one starts it
    numbers = core.split(".")
    if len(numbers) != 3 or not all(number and _DIGITS.issuperset(number) for number in numbers):
        return False
    labels = ([pre_release] if dash else []) + ([build] if plus else [])
    return all(part and _SEMVER_IDENTIFIER.issuperset(part) for label in labels for part in label.split("."))


def _check_header(obj: dict[str, Any], kind: str) -> None:
    found = require(obj, "acKind", field="")
    if found != kind:
        raise ManifestError(f"acKind must be {kind!r}, not {show(found)}", field="acKind", rule="kind")
    version = expect_string(require(obj, "acVersion", field=""), field="acVersion")
    if not is_semver(version) or version == "0.0.0":
        raise ManifestError(
            f"acVersion must be a semantic version such as 0.8.11, not {show(version)}",
            field="acVersion",
            rule="semver",
        )


def _check_absolute_path(value: object, *, field: str) -> str:
    path = expect_string(value, field=field)
    if not path.startswith("/") or "\0" in path:
        raise ManifestError(f"{field} must be an absolute path, not {show(path)}", field=field, rule="absolute-path")
    return path


def _check_unique(name: str, seen: dict[str, int], *, field: str, list_field: str, what: str) -> None:
    if name in seen:
        raise ManifestError(
            f"{field}: duplicate {what} {name!r} (first at {item(list_field, seen[name])})", field=field, rule="unique"
        )


def _check_timestamp(value: str, *, field: str) -> None:
    import datetime  # only manifests with timestamps come here: ~1.3 ms off the pod-start path

    match = _RFC3339_RE.fullmatch(value)
    try:
        if match is None:
            raise ValueError("not in RFC 3339 date-time form")
        datetime.date.fromisoformat(match["date"])
        datetime.time(int(match["h"]), int(match["m"]), int(match["s"]))
        if match["oh"] is not None and (int(match["oh"]) > 23 or int(match["om"]) > 59):
            raise ValueError("bad time zone offset")
    except ValueError as exc:
        raise ManifestError(
            f"{field} must be an RFC 3339 timestamp such as 2014-10-27T19:32:27Z, not {show(value)} ({exc})",
            field=field,
            rule="timestamp",
        ) from None


def _check_url(value: str, *, field: str) -> None:
    try:
        parts = urllib.parse.urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ManifestError(f"{field} must be an http or https URL, not {show(value)}", field=field, rule="url")


def _check_annotations(value: object, *, field: str) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        name = check_ac_identifier(require(obj, "name", field=at), field=child(at, "name"))
        _check_unique(name, seen, field=child(at, "name"), list_field=field, what="annotation")
        seen[name] = index
        text = expect_string(require(obj, "value", field=at), field=child(at, "value"))
        # Well-known annotations with a defined format (spec/aci.md), checked as the Go reference does.
        if name == "created":
            _check_timestamp(text, field=child(at, "value"))
        elif name in ("homepage", "documentation"):
            _check_url(text, field=child(at, "value"))


def _check_string_map(value: object, *, field: str) -> None:
    """userAnnotations / userLabels: an object whose values are all strings (null = none)."""
    if value is None:
        return
    for key, text in expect_object(value, field=field).items():
        expect_string(text, field=child(field, key))


# --- The app section (image manifest `app`, pod manifest `apps[].app`) -----------------------------


def _check_exec(value: object, *, field: str, required: bool) -> None:
    # The Go reference accepts an absent, null or empty exec in an app (an image used only as a
    # dependency, or one whose pod supplies the command); an event handler needs a command.
    argv = expect_list(value, field=field)
    if required and not argv:
        raise ManifestError(f"{field} must be a non-empty list of strings", field=field, rule="required")
    for index, arg in enumerate(argv):
        expect_string(arg, field=item(field, index), non_empty=index == 0)


def _check_event_handlers(value: object, *, field: str) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        name = expect_string(require(obj, "name", field=at), field=child(at, "name"))
        if name not in _EVENT_HANDLERS:
            raise ManifestError(
                f"{child(at, 'name')} must be one of {', '.join(_EVENT_HANDLERS)}, not {show(name)}",
                field=child(at, "name"),
                rule="enum",
            )
        _check_unique(name, seen, field=child(at, "name"), list_field=field, what="event handler")
        seen[name] = index
        _check_exec(obj.get("exec"), field=child(at, "exec"), required=True)


def _check_environment(value: object, *, field: str) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        name = expect_string(require(obj, "name", field=at), field=child(at, "name"))
        if not _ENV_NAME_RE.fullmatch(name):
            raise ManifestError(
                f"{child(at, 'name')} must be letters, digits and '_', not starting with a digit; not {show(name)}",
                field=child(at, "name"),
                rule="env-name",
            )
        _check_unique(name, seen, field=child(at, "name"), list_field=field, what="environment variable")
        seen[name] = index
        expect_string(require(obj, "value", field=at), field=child(at, "value"))


def _check_mount_points(value: object, *, field: str) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        name = check_ac_name(require(obj, "name", field=at), field=child(at, "name"))
        _check_unique(name, seen, field=child(at, "name"), list_field=field, what="mount point")
        seen[name] = index
        _check_absolute_path(require(obj, "path", field=at), field=child(at, "path"))
        if obj.get("readOnly") is not None:
            expect_bool(obj["readOnly"], field=child(at, "readOnly"))


def _check_port(value: object, *, field: str) -> str:
    """Check one port object (image `app.ports[]`, pod `ports[].podPort`); return its name."""
    obj = expect_object(value, field=field)
    name = check_ac_name(require(obj, "name", field=field), field=child(field, "name"))
    protocol = expect_string(require(obj, "protocol", field=field), field=child(field, "protocol"))
    if protocol not in _PROTOCOLS:
        raise ManifestError(
            f"{child(field, 'protocol')} must be one of {', '.join(_PROTOCOLS)}, not {show(protocol)}",
            field=child(field, "protocol"),
            rule="enum",
        )
    port = expect_int(require(obj, "port", field=field), field=child(field, "port"), low=1, high=_MAX_PORT)
    count = obj.get("count")
    # count 0 means "unset" (1) to the Go reference, and actool writes it; anything else must fit.
    if count is not None and expect_int(count, field=child(field, "count"), low=0) + port - 1 > _MAX_PORT:
        raise ManifestError(
            f"{child(field, 'count')}: {show(count)} ports from {port} would end beyond {_MAX_PORT}",
            field=child(field, "count"),
            rule="range",
        )
    if obj.get("socketActivated") is not None:
        expect_bool(obj["socketActivated"], field=child(field, "socketActivated"))
    return name


def _check_ports(value: object, *, field: str) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        name = _check_port(entry, field=at)
        _check_unique(name, seen, field=child(at, "name"), list_field=field, what="port")
        seen[name] = index


def _check_app(value: object, *, field: str) -> None:
    app = expect_object(value, field=field)
    _check_exec(app.get("exec"), field=child(field, "exec"), required=False)
    expect_string(require(app, "user", field=field), field=child(field, "user"), non_empty=True)
    expect_string(require(app, "group", field=field), field=child(field, "group"), non_empty=True)
    gids = child(field, "supplementaryGIDs")
    for index, gid in enumerate(expect_list(app.get("supplementaryGIDs"), field=gids)):
        expect_int(gid, field=item(gids, index), low=0)
    _check_event_handlers(app.get("eventHandlers"), field=child(field, "eventHandlers"))
    working_directory = app.get("workingDirectory")
    if working_directory is not None and expect_string(working_directory, field=child(field, "workingDirectory")):
        _check_absolute_path(working_directory, field=child(field, "workingDirectory"))
    _check_environment(app.get("environment"), field=child(field, "environment"))
    check_isolators(app.get("isolators"), field=child(field, "isolators"), pod_level=False)
    _check_mount_points(app.get("mountPoints"), field=child(field, "mountPoints"))
    _check_ports(app.get("ports"), field=child(field, "ports"))
    _check_string_map(app.get("userAnnotations"), field=child(field, "userAnnotations"))
    _check_string_map(app.get("userLabels"), field=child(field, "userLabels"))


# --- Image manifest --------------------------------------------------------------------------------


def _check_dependencies(value: object, *, field: str) -> None:
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        check_ac_identifier(require(obj, "imageName", field=at), field=child(at, "imageName"))
        if obj.get("imageID") is not None:
            check_hash(obj["imageID"], field=child(at, "imageID"))
        check_labels(obj.get("labels"), field=child(at, "labels"))
        if obj.get("size") is not None:
            expect_int(obj["size"], field=child(at, "size"), low=0)


def validate_image_manifest(obj: dict[str, Any]) -> None:
    """Raise ManifestError naming the first field of `obj` that breaks the image manifest schema."""
    obj = expect_object(obj, field="")
    # Members not checked here are ignored, as by the Go reference: later 0.x manifests must still load.
    _check_header(obj, IMAGE_MANIFEST)
    check_ac_identifier(require(obj, "name", field=""), field="name")
    check_labels(obj.get("labels"), field="labels")
    if obj.get("app") is not None:
        _check_app(obj["app"], field="app")
    _check_dependencies(obj.get("dependencies"), field="dependencies")
    for index, path in enumerate(expect_list(obj.get("pathWhitelist"), field="pathWhitelist")):
        _check_absolute_path(path, field=item("pathWhitelist", index))
    _check_annotations(obj.get("annotations"), field="annotations")


# --- Pod manifest ----------------------------------------------------------------------------------


def _check_volume(value: object, *, field: str) -> str:
    """Check one volume object (pod `volumes[]`, `apps[].mounts[].appVolume`); return its name."""
    obj = expect_object(value, field=field)
    name = check_ac_name(require(obj, "name", field=field), field=child(field, "name"))
    kind = expect_string(require(obj, "kind", field=field), field=child(field, "kind"))
    for key in ("readOnly", "recursive"):
        # recursive is "only interpreted" for host volumes; like the Go reference, it is allowed on empty.
        if obj.get(key) is not None:
            expect_bool(obj[key], field=child(field, key))
    if kind == "host":
        _check_absolute_path(require(obj, "source", field=field), field=child(field, "source"))
        misplaced = [key for key in ("mode", "uid", "gid") if obj.get(key) is not None]
    elif kind == "empty":
        misplaced = ["source"] if obj.get("source") is not None else []
        if obj.get("mode") is not None:
            mode = expect_string(obj["mode"], field=child(field, "mode"))
            if not _MODE_RE.fullmatch(mode):
                raise ManifestError(
                    f'{child(field, "mode")} must be an octal mode such as "0755", not {show(mode)}',
                    field=child(field, "mode"),
                    rule="mode",
                )
        for key in ("uid", "gid"):
            if obj.get(key) is not None:
                expect_int(obj[key], field=child(field, key), low=0)
    else:
        raise ManifestError(
            f"{child(field, 'kind')} must be host or empty, not {show(kind)}", field=child(field, "kind"), rule="enum"
        )
    if misplaced:
        raise ManifestError(
            f"{child(field, misplaced[0])} cannot be set on a volume of kind {kind}",
            field=child(field, misplaced[0]),
            rule="volume-kind",
        )
    return name


def _check_runtime_image(value: object, *, field: str, reified: bool) -> None:
    image = expect_object(value, field=field)
    if image.get("id") is not None:
        image_id = check_hash(image["id"], field=child(field, "id"))
        if reified and not is_full_image_id(image_id):
            raise ManifestError(
                f"{child(field, 'id')} must be a full image ID in a runnable pod, not {show(image_id)}",
                field=child(field, "id"),
                rule="reified",
            )
    elif reified:
        raise ManifestError(
            f"{child(field, 'id')} is required in a runnable pod", field=child(field, "id"), rule="reified"
        )
    if image.get("name") is not None:
        check_ac_identifier(image["name"], field=child(field, "name"))
    elif image.get("id") is None:
        # Neither name nor ID leaves nothing to resolve; the Go reference does not check this.
        raise ManifestError(f"{field} needs an id or a name", field=child(field, "name"), rule="required")
    check_labels(image.get("labels"), field=child(field, "labels"))


def _check_mounts(value: object, *, field: str, volumes: dict[str, int], reified: bool) -> None:
    paths: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        volume = check_ac_name(require(obj, "volume", field=at), field=child(at, "volume"))
        path = _check_absolute_path(require(obj, "path", field=at), field=child(at, "path"))
        _check_unique(path, paths, field=child(at, "path"), list_field=field, what="mount path")
        paths[path] = index
        if obj.get("appVolume") is not None:
            _check_volume(obj["appVolume"], field=child(at, "appVolume"))
        elif reified and volume not in volumes:
            # A template may leave volumes to be bound later; a runnable pod must declare each one.
            raise ManifestError(
                f"{child(at, 'volume')}: no volume named {volume!r} in volumes",
                field=child(at, "volume"),
                rule="reference",
            )


def _check_exposed_ports(value: object, *, field: str) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        name = check_ac_name(require(obj, "name", field=at), field=child(at, "name"))
        _check_unique(name, seen, field=child(at, "name"), list_field=field, what="port")
        seen[name] = index
        expect_int(require(obj, "hostPort", field=at), field=child(at, "hostPort"), low=1, high=_MAX_PORT)
        if obj.get("hostIP") is not None:
            address = expect_string(obj["hostIP"], field=child(at, "hostIP"))
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise ManifestError(
                    f"{child(at, 'hostIP')} must be an IPv4 address, not {show(address)}",
                    field=child(at, "hostIP"),
                    rule="ip",
                ) from None
        if obj.get("podPort") is not None:
            _check_port(obj["podPort"], field=child(at, "podPort"))


def validate_pod_manifest(obj: dict[str, Any], *, reified: bool = False) -> None:
    """Raise ManifestError naming the first field of `obj` that breaks the pod manifest schema."""
    obj = expect_object(obj, field="")
    # Members not checked here are ignored, as by the Go reference: later 0.x manifests must still load.
    _check_header(obj, POD_MANIFEST)
    volumes: dict[str, int] = {}
    for index, entry in enumerate(expect_list(obj.get("volumes"), field="volumes")):
        name = _check_volume(entry, field=item("volumes", index))
        _check_unique(name, volumes, field=child(item("volumes", index), "name"), list_field="volumes", what="volume")
        volumes[name] = index
    if "apps" not in obj:
        raise ManifestError("apps is required (it may be empty)", field="apps", rule="required")
    names: dict[str, int] = {}
    # An empty app list is valid: a template, or a sandbox pod to which apps are added later.
    for index, entry in enumerate(expect_list(obj["apps"], field="apps")):
        at = item("apps", index)
        app = expect_object(entry, field=at)
        name = check_ac_name(require(app, "name", field=at), field=child(at, "name"))
        _check_unique(name, names, field=child(at, "name"), list_field="apps", what="app")
        names[name] = index
        _check_runtime_image(require(app, "image", field=at), field=child(at, "image"), reified=reified)
        if app.get("app") is not None:
            _check_app(app["app"], field=child(at, "app"))
        if app.get("readOnlyRootFS") is not None:
            expect_bool(app["readOnlyRootFS"], field=child(at, "readOnlyRootFS"))
        _check_mounts(app.get("mounts"), field=child(at, "mounts"), volumes=volumes, reified=reified)
        _check_annotations(app.get("annotations"), field=child(at, "annotations"))
    check_isolators(obj.get("isolators"), field="isolators", pod_level=True)
    _check_annotations(obj.get("annotations"), field="annotations")
    _check_exposed_ports(obj.get("ports"), field="ports")
    _check_string_map(obj.get("userAnnotations"), field="userAnnotations")
    _check_string_map(obj.get("userLabels"), field="userLabels")
