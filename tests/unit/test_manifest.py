"""Tests for rocket.manifest: the spec's examples validate, mutations fail on the right field, nothing crashes."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from pathlib import Path
from typing import Any, Iterator, Union

import pytest

from rocket.errors import ManifestError
from rocket.manifest import (
    image_labels,
    load_any_manifest,
    load_image_manifest,
    load_pod_manifest,
    validate_image_manifest,
    validate_pod_manifest,
)


def vectors_dir() -> Path:
    """The shared test vectors: $ROCKET_VECTORS, else the `shared/vectors` folder beside the repository."""
    override = os.environ.get("ROCKET_VECTORS")
    return Path(override) if override else Path(__file__).parents[3] / "shared" / "vectors"


EXAMPLES = vectors_dir() / "appc" / "examples"


def example_files() -> list[Path]:
    # A missing folder yields one path that does not exist, so that the test fails instead of vanishing.
    files = sorted(EXAMPLES.glob("*.json")) if EXAMPLES.is_dir() else []
    return files or [EXAMPLES / "missing"]


def load_example(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((EXAMPLES / name).read_bytes())
    return result


# --- The specification's examples ------------------------------------------------------------------


def test_examples_folder_present() -> None:
    assert EXAMPLES.is_dir(), f"test vectors missing at {EXAMPLES} (set ROCKET_VECTORS)"
    assert {"image.json", "pod_runtime.json", "pod_template.json"} <= {p.name for p in EXAMPLES.glob("*.json")}


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    kind, obj = load_any_manifest(path.read_bytes(), where=str(path))
    assert kind == obj["acKind"]
    if kind == "ImageManifest":
        assert load_image_manifest(path.read_bytes(), where=str(path)) == obj
    else:
        assert load_pod_manifest(path.read_bytes(), where=str(path)) == obj


def test_runtime_example_is_reified_and_template_is_not() -> None:
    validate_pod_manifest(load_example("pod_runtime.json"), reified=True)
    with pytest.raises(ManifestError) as info:
        validate_pod_manifest(load_example("pod_template.json"), reified=True)
    assert info.value.field == "apps[1].image.id"


def test_image_labels() -> None:
    assert image_labels(load_example("image.json")) == {"version": "1.0.0", "arch": "amd64", "os": "linux"}
    assert image_labels({"acKind": "ImageManifest"}) == {}


def test_kind_mismatch() -> None:
    data = (EXAMPLES / "pod_runtime.json").read_bytes()
    with pytest.raises(ManifestError) as info:
        load_image_manifest(data, where="pod.json")
    assert info.value.field == "acKind"
    assert info.value.message.startswith("pod.json: ")


# --- JSON that is not a manifest -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"a": 1,}', b"[]", b"null", b'"x"', b"\xff\xfe", b"\xef\xbb\xbf{}", b'{"a": NaN}', b"[" * 100000],
)
def test_not_a_manifest(data: bytes) -> None:
    with pytest.raises(ManifestError) as info:
        load_any_manifest(data, where="x")
    assert info.value.field == ""


def test_json_error_has_line_and_column() -> None:
    with pytest.raises(ManifestError) as info:
        load_image_manifest(b'{\n  "acKind": "ImageManifest",\n  oops\n}', where="m")
    assert (info.value.field, info.value.context["line"], info.value.context["column"]) == ("", 3, 3)


def test_unknown_kind() -> None:
    with pytest.raises(ManifestError) as info:
        load_any_manifest(b'{"acKind": "ContainerRuntimeManifest", "acVersion": "0.8.11"}', where="x")
    assert info.value.field == "acKind"


# --- Mutations of valid manifests ------------------------------------------------------------------

DELETE = object()
Path_ = tuple[Union[str, int], ...]
FULL_ID = "sha512-" + "ab" * 64


def mutated(base: str, edits: list[tuple[Path_, object]]) -> dict[str, Any]:
    obj = load_example(base)
    for path, value in edits:
        parent: Any = obj
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if value is DELETE:
            del parent[last]
        elif isinstance(parent, list) and last == len(parent):
            parent.append(value)
        else:
            parent[last] = value
    return obj


IMG = "image.json"
POD = "pod_runtime.json"
TPL = "pod_template.json"
ISO = ("app", "isolators")

INVALID: list[tuple[str, str, list[tuple[Path_, object]], str]] = [
    # image manifest: header and name
    ("no-kind", IMG, [(("acKind",), DELETE)], "acKind"),
    ("wrong-kind", IMG, [(("acKind",), "PodManifest")], "acKind"),
    ("no-version", IMG, [(("acVersion",), DELETE)], "acVersion"),
    ("bad-version", IMG, [(("acVersion",), "v0.8")], "acVersion"),
    ("zero-version", IMG, [(("acVersion",), "0.0.0")], "acVersion"),
    ("no-name", IMG, [(("name",), DELETE)], "name"),
    ("upper-name", IMG, [(("name",), "Example.com/worker")], "name"),
    # labels
    ("label-value-number", IMG, [(("labels", 0, "value"), 1)], "labels[0].value"),
    ("label-duplicate", IMG, [(("labels", 3), {"name": "os", "value": "linux"})], "labels[3].name"),
    ("label-bad-arch", IMG, [(("labels", 1, "value"), "x86_64")], "labels[1].value"),
    ("label-arch-without-os", IMG, [(("labels", 2), DELETE)], "labels[1].value"),
    ("label-unknown-os", IMG, [(("labels", 2, "value"), "windows"), (("labels", 1), DELETE)], "labels[1].value"),
    # app
    ("app-not-object", IMG, [(("app",), [])], "app"),
    ("exec-string", IMG, [(("app", "exec"), "/usr/bin/reduce-worker")], "app.exec"),
    ("exec-number-arg", IMG, [(("app", "exec", 1), 7)], "app.exec[1]"),
    ("exec-empty-program", IMG, [(("app", "exec", 0), "")], "app.exec[0]"),
    ("no-user", IMG, [(("app", "user"), DELETE)], "app.user"),
    ("empty-group", IMG, [(("app", "group"), "")], "app.group"),
    ("negative-gid", IMG, [(("app", "supplementaryGIDs"), [400, -1])], "app.supplementaryGIDs[1]"),
    ("handler-name", IMG, [(("app", "eventHandlers", 0, "name"), "post-start")], "app.eventHandlers[0].name"),
    ("handler-twice", IMG, [(("app", "eventHandlers", 1, "name"), "pre-start")], "app.eventHandlers[1].name"),
    ("handler-no-exec", IMG, [(("app", "eventHandlers", 1, "exec"), [])], "app.eventHandlers[1].exec"),
    ("relative-workdir", IMG, [(("app", "workingDirectory"), "opt/work")], "app.workingDirectory"),
    ("env-name-equals", IMG, [(("app", "environment", 0, "name"), "A=B")], "app.environment[0].name"),
    (
        "env-duplicate",
        IMG,
        [(("app", "environment", 1), {"name": "REDUCE_WORKER_DEBUG", "value": ""})],
        "app.environment[1].name",
    ),
    ("env-value-bool", IMG, [(("app", "environment", 0, "value"), True)], "app.environment[0].value"),
    ("limit-garbage", IMG, [((*ISO, 1, "value", "limit"), "1 GB")], "app.isolators[1].value.limit"),
    ("caps-unknown", IMG, [((*ISO, 2, "value", "set", 1), "CAP_TELEPORT")], "app.isolators[2].value.set[1]"),
    (
        "caps-conflict",
        IMG,
        [((*ISO, 5), {"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_KILL"]}})],
        "app.isolators[5].name",
    ),
    ("nnp-string", IMG, [((*ISO, 3, "value"), "yes")], "app.isolators[3].value"),
    ("seccomp-errno-lower", IMG, [((*ISO, 4, "value", "errno"), "eaccess")], "app.isolators[4].value.errno"),
    ("sysctl-in-app", IMG, [((*ISO, 5), {"name": "os/unix/sysctl", "value": {}})], "app.isolators[5].name"),
    ("mountpoint-name", IMG, [(("app", "mountPoints", 0, "name"), "data_base")], "app.mountPoints[0].name"),
    ("mountpoint-relative", IMG, [(("app", "mountPoints", 0, "path"), "var/lib/db")], "app.mountPoints[0].path"),
    (
        "mountpoint-readonly-string",
        IMG,
        [(("app", "mountPoints", 0, "readOnly"), "false")],
        "app.mountPoints[0].readOnly",
    ),
    ("port-zero", IMG, [(("app", "ports", 0, "port"), 0)], "app.ports[0].port"),
    ("port-high", IMG, [(("app", "ports", 0, "port"), 65536)], "app.ports[0].port"),
    ("port-range-overflow", IMG, [(("app", "ports", 0, "count"), 61537)], "app.ports[0].count"),
    ("port-protocol", IMG, [(("app", "ports", 0, "protocol"), "sctp")], "app.ports[0].protocol"),
    (
        "port-duplicate",
        IMG,
        [(("app", "ports", 1), {"name": "health", "port": 5000, "protocol": "udp"})],
        "app.ports[1].name",
    ),
    ("port-socket-activated-int", IMG, [(("app", "ports", 0, "socketActivated"), 1)], "app.ports[0].socketActivated"),
    # dependencies, whitelist, annotations
    ("dep-no-name", IMG, [(("dependencies", 0, "imageName"), DELETE)], "dependencies[0].imageName"),
    ("dep-bad-id", IMG, [(("dependencies", 0, "imageID"), "sha256-abc")], "dependencies[0].imageID"),
    ("dep-label-name", IMG, [(("dependencies", 0, "labels", 1, "name"), "Env")], "dependencies[0].labels[1].name"),
    ("dep-negative-size", IMG, [(("dependencies", 0, "size"), -5)], "dependencies[0].size"),
    ("whitelist-relative", IMG, [(("pathWhitelist", 2), "opt/libs/reduce-toolkit.so")], "pathWhitelist[2]"),
    ("annotation-duplicate", IMG, [(("annotations", 5), {"name": "authors", "value": "x"})], "annotations[5].name"),
    ("annotation-bool", IMG, [(("annotations", 4, "value"), False)], "annotations[4].value"),
    ("created-not-rfc3339", IMG, [(("annotations", 1, "value"), "2014-10-27 19:32:27")], "annotations[1].value"),
    ("created-bad-month", IMG, [(("annotations", 1, "value"), "2014-13-27T19:32:27Z")], "annotations[1].value"),
    ("homepage-ftp", IMG, [(("annotations", 3, "value"), "ftp://example.com")], "annotations[3].value"),
    ("documentation-no-host", IMG, [(("annotations", 2, "value"), "https://")], "annotations[2].value"),
    # pod manifest
    ("pod-kind", POD, [(("acKind",), "ImageManifest")], "acKind"),
    ("pod-no-apps", POD, [(("apps",), DELETE)], "apps"),
    ("pod-apps-object", POD, [(("apps",), {})], "apps"),
    ("app-name-bad", POD, [(("apps", 1, "name"), "Backup")], "apps[1].name"),
    ("app-name-duplicate", POD, [(("apps", 2, "name"), "reduce-worker")], "apps[2].name"),
    ("app-no-image", POD, [(("apps", 0, "image"), DELETE)], "apps[0].image"),
    ("image-id-bad", POD, [(("apps", 0, "image", "id"), "md5-abc")], "apps[0].image.id"),
    ("image-name-bad", POD, [(("apps", 0, "image", "name"), "example.com//x")], "apps[0].image.name"),
    ("image-nothing", TPL, [(("apps", 1, "image"), {"labels": []})], "apps[1].image.name"),
    (
        "image-label-os",
        POD,
        [(("apps", 1, "image", "labels", 1), {"name": "os", "value": "beos"})],
        "apps[1].image.labels[1].value",
    ),
    ("pod-app-user", POD, [(("apps", 0, "app", "user"), 0)], "apps[0].app.user"),
    (
        "pod-app-isolator",
        POD,
        [(("apps", 0, "app", "isolators", 0, "value", "limit"), "lots")],
        "apps[0].app.isolators[0].value.limit",
    ),
    ("readonly-rootfs-string", POD, [(("apps", 2, "readOnlyRootFS"), "true")], "apps[2].readOnlyRootFS"),
    ("mount-volume-bad", POD, [(("apps", 1, "mounts", 1, "volume"), "build_output")], "apps[1].mounts[1].volume"),
    ("mount-relative", POD, [(("apps", 1, "mounts", 0, "path"), "mnt/db")], "apps[1].mounts[0].path"),
    ("mount-path-twice", POD, [(("apps", 1, "mounts", 1, "path"), "/mnt/db")], "apps[1].mounts[1].path"),
    ("app-annotation-name", POD, [(("apps", 1, "annotations", 0, "name"), "Foo")], "apps[1].annotations[0].name"),
    ("volume-kind", POD, [(("volumes", 0, "kind"), "nfs")], "volumes[0].kind"),
    ("volume-host-no-source", POD, [(("volumes", 0, "source"), DELETE)], "volumes[0].source"),
    ("volume-host-relative", POD, [(("volumes", 0, "source"), "opt/tenant1")], "volumes[0].source"),
    ("volume-host-mode", POD, [(("volumes", 0, "mode"), "0755")], "volumes[0].mode"),
    ("volume-empty-source", POD, [(("volumes", 1, "source"), "/tmp")], "volumes[1].source"),
    ("volume-empty-mode", POD, [(("volumes", 1, "mode"), "0999")], "volumes[1].mode"),
    ("volume-empty-uid", POD, [(("volumes", 1, "uid"), -1)], "volumes[1].uid"),
    ("volume-readonly-string", POD, [(("volumes", 0, "readOnly"), "yes")], "volumes[0].readOnly"),
    ("volume-duplicate", POD, [(("volumes", 1, "name"), "dbvolume")], "volumes[1].name"),
    (
        "pod-isolator-caps",
        POD,
        [(("isolators", 2), {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_KILL"]}})],
        "isolators[2].name",
    ),
    (
        "pod-sysctl-value",
        POD,
        [(("isolators", 1, "value", "net.ipv4.tcp_fin_timeout"), 6)],
        "isolators[1].value.net.ipv4.tcp_fin_timeout",
    ),
    ("pod-annotation", POD, [(("annotations", 0, "value"), None)], "annotations[0].value"),
    ("pod-port-name", POD, [(("ports",), [{"name": "FTP", "hostPort": 2121}])], "ports[0].name"),
    ("pod-port-host-zero", POD, [(("ports",), [{"name": "ftp", "hostPort": 0}])], "ports[0].hostPort"),
    ("pod-port-ip", POD, [(("ports",), [{"name": "ftp", "hostPort": 21, "hostIP": "::1"}])], "ports[0].hostIP"),
    (
        "pod-port-podport",
        POD,
        [(("ports",), [{"name": "ftp", "hostPort": 21, "podPort": {"name": "ftp", "port": 21}}])],
        "ports[0].podPort.protocol",
    ),
    (
        "pod-port-duplicate",
        POD,
        [(("ports",), [{"name": "ftp", "hostPort": 21}, {"name": "ftp", "hostPort": 22}])],
        "ports[1].name",
    ),
    ("pod-user-labels", POD, [(("userLabels",), {"team": 1})], "userLabels.team"),
]


@pytest.mark.parametrize(("base", "edits", "field"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_manifest(base: str, edits: list[tuple[Path_, object]], field: str) -> None:
    obj = mutated(base, edits)
    validate = validate_image_manifest if base == IMG else validate_pod_manifest
    with pytest.raises(ManifestError) as info:
        validate(obj)
    assert info.value.field == field, info.value.message
    # As bytes it fails too, with the location in front of the message.
    with pytest.raises(ManifestError) as again:
        load_any_manifest(json.dumps(obj).encode(), where="case")
    assert again.value.message.startswith("case: ")


def test_invalid_table_is_large() -> None:
    assert len(INVALID) >= 40
    assert len({case[0] for case in INVALID}) == len(INVALID)


VALID_VARIANTS: list[tuple[str, str, list[tuple[Path_, object]]]] = [
    ("no-app", IMG, [(("app",), DELETE)]),
    ("app-null", IMG, [(("app",), None)]),
    ("exec-absent", IMG, [(("app", "exec"), DELETE)]),
    ("exec-null", IMG, [(("app", "exec"), None)]),
    ("lists-null", IMG, [(("labels",), None), (("dependencies",), None), (("annotations",), None)]),
    ("unknown-members", IMG, [(("x-future",), {"a": [1]}), (("app", "x-future"), 1)]),
    ("unknown-isolator", IMG, [((*ISO, 5), {"name": "example.com/gpu", "value": {"count": 1}})]),
    ("port-count-zero", IMG, [(("app", "ports", 0, "count"), 0)]),
    ("port-range", IMG, [(("app", "ports", 0, "count"), 61536)]),
    ("workdir-empty", IMG, [(("app", "workingDirectory"), "")]),
    ("created-offset", IMG, [(("annotations", 1, "value"), "2015-05-18T13:49:28.351729952-04:00")]),
    (
        "pod-null-lists",
        POD,
        [(("volumes",), None), (("isolators",), None), (("annotations",), None), (("ports",), None)],
    ),
    ("pod-apps-null", POD, [(("apps",), None), (("volumes",), None)]),
    ("pod-apps-empty", TPL, [(("apps",), [])]),
    ("pod-ports", POD, [(("ports",), [{"name": "ftp", "hostPort": 2121, "hostIP": "203.0.113.23"}])]),
    ("empty-volume-defaults", POD, [(("volumes", 1), {"name": "buildoutput", "kind": "empty"})]),
    ("recursive-host", POD, [(("volumes", 0, "recursive"), False)]),
    ("mount-undeclared-template", POD, [(("volumes",), [])]),
    ("app-volume", POD, [(("apps", 0, "mounts", 0, "appVolume"), {"name": "x", "kind": "empty"}), (("volumes",), [])]),
]


@pytest.mark.parametrize(
    ("base", "edits"), [case[1:] for case in VALID_VARIANTS], ids=[case[0] for case in VALID_VARIANTS]
)
def test_valid_variant(base: str, edits: list[tuple[Path_, object]]) -> None:
    kind, _ = load_any_manifest(json.dumps(mutated(base, edits)).encode(), where="variant")
    assert kind == ("ImageManifest" if base == IMG else "PodManifest")


def test_reified_needs_declared_volumes_and_full_ids() -> None:
    pod = mutated(POD, [(("volumes",), [])])
    with pytest.raises(ManifestError) as info:
        validate_pod_manifest(pod, reified=True)
    assert info.value.field == "apps[0].mounts[0].volume"
    pod = mutated(POD, [(("apps", 0, "image", "id"), "sha512-8d3fffddf79e")])
    validate_pod_manifest(pod)
    with pytest.raises(ManifestError) as info:
        validate_pod_manifest(pod, reified=True)
    assert info.value.field == "apps[0].image.id"
    validate_pod_manifest(mutated(POD, [(("apps", 0, "image", "id"), FULL_ID)]), reified=True)


# --- Robustness: any JSON value anywhere gives a ManifestError or success, never a traceback --------

# The five of the brief, then a few that reach one level further into list and object handling.
REPLACEMENTS: list[object] = [None, 1, "x", [], {}, True, -1.5, [None], [{}], ["x", 1], {"name": None, "value": []}]


def node_paths(node: object, prefix: Path_ = ()) -> Iterator[Path_]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from node_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from node_paths(value, (*prefix, index))


def replaced(obj: object, path: Path_, value: object) -> object:
    if not path:
        return copy.deepcopy(value)
    result = copy.deepcopy(obj)
    parent: Any = result
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return result


def validate_any(obj: object, *, reified: bool) -> None:
    """Validate `obj` as the kind its source example is, through the public validators."""
    if isinstance(obj, dict) and obj.get("acKind") == "ImageManifest":
        validate_image_manifest(obj)
    else:
        validate_pod_manifest(obj, reified=reified)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["image.json", "pod_runtime.json", "pod_template.json"])
def test_every_node_replaced_by_garbage(name: str) -> None:
    original = load_example(name)
    runs = failures = 0
    for path in list(node_paths(original)):
        for value in REPLACEMENTS:
            candidate = replaced(original, path, value)
            for reified in (False, True):
                runs += 1
                try:
                    validate_any(candidate, reified=reified)
                except ManifestError as exc:
                    failures += 1
                    assert isinstance(exc.field, str)
                    assert exc.message
            with contextlib.suppress(ManifestError):
                load_any_manifest(json.dumps(candidate).encode(), where=name)
    assert runs > 100
    assert failures > 0


def test_is_semver_agrees_with_the_go_references_pattern() -> None:
    """manifest.is_semver checks coreos/go-semver's pattern by hand; on every string they agree."""
    import itertools
    import random
    import re

    from rocket.manifest import is_semver

    identifiers = r"[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*"
    pattern = re.compile(rf"[0-9]+\.[0-9]+\.[0-9]+(-{identifiers})?(\+{identifiers})?")
    alphabet = "01.-+aZ_ \n٣"
    chance = random.Random(7)
    texts = ["0.8.11", "1.2.3-rc.1+build.5", "1.2.3+b", "1.2.3-", "1.2.3-a..b", "01.2.3", "1.2", "1.2.3.4"]
    texts += ["".join(chars) for n in range(6) for chars in itertools.product("1.-+a", repeat=n)]

    def random_text(shortest: int, longest: int) -> str:
        return "".join(chance.choice(alphabet) for _index in range(chance.randint(shortest, longest)))

    texts += ["1.2.3" + random_text(0, 12) for _sample in range(20000)]
    texts += [random_text(1, 14) for _sample in range(20000)]
    for text in texts:
        assert is_semver(text) == bool(pattern.fullmatch(text)), repr(text)
