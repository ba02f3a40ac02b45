"""Declared pods converge idempotently: the engine under the `pods` module and `rocket boot`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from pods import BUSYBOX, Rocket, busybox_image
from rocket.cli.context import Context
from rocket.desired import NAME_ANNOTATION, Converger, boot, managed_pods, read_record
from rocket.engine_copy import engine_digest, install_engine
from rocket.errors import NotFoundError, UsageError
from rocket.lifecycle import status
from rocket.pod import Pod
from rocket.store import Store

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="pods need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="needs busybox-static"),
]


@pytest.fixture()
def host(tmp_path: Path) -> Iterator[Context]:
    cli = Rocket(tmp_path / "data")
    cli("fetch", str(busybox_image(tmp_path)))
    ctx = Context(data_dir=tmp_path / "data", local_config=tmp_path / "etc", system_config=tmp_path / "lib")
    yield ctx
    for pod in Pod.all(ctx.data_dir):
        if pod.is_running():
            cli("stop", "--force", pod.uuid, check=False)
    cli("gc", "--grace-period=0s", check=False)


def from_store(ctx: Context) -> Any:
    def resolve(reference: str, check: bool) -> Optional[str]:
        if check:
            store = Store.read_only(ctx.data_dir)
            if store is None:
                return None
            try:
                return str(store.resolve(reference).id)
            except NotFoundError:
                return None
            finally:
                store.close()
        return str(ctx.store().resolve(reference).id)

    return resolve


def web(value: str = "one", **extra: Any) -> Dict[str, Any]:
    return {
        "name": "web",
        "net": ["none"],
        "apps": [
            {
                "image": "example.com/busybox",
                "exec": ["/bin/sleep", "600"],
                "environment": {"GREETING": value},
            }
        ],
        **extra,
    }


def converge(ctx: Context, specs: List[Dict[str, Any]], *, check: bool = False, exclusive: bool = False) -> List[Any]:
    converger = Converger(ctx, resolve=from_store(ctx), check=check, insecure_image=True)
    outcomes = [converger.converge(spec) for spec in specs]
    if exclusive:
        outcomes += converger.remove_others([spec["name"] for spec in specs])
    return outcomes


def running(ctx: Context) -> Dict[str, List[str]]:
    return {name: [p.uuid for p in pods if p.is_running()] for name, pods in managed_pods(ctx.data_dir).items()}


def test_create_then_nothing_to_do(host: Context) -> None:
    first = converge(host, [web()])[0]
    assert first.action == "created" and first.uuid
    second = converge(host, [web()])[0]
    assert second.action == "unchanged" and second.uuid == first.uuid
    assert running(host) == {"web": [first.uuid]}
    record = read_record(host.data_dir, "web")
    assert record is not None and record["state"] == "running" and record["image_ids"] == first.image_ids


def test_a_changed_variable_replaces_only_that_pod(host: Context) -> None:
    outcomes = converge(host, [web(), dict(web(), name="other")])
    before = {o.name: o.uuid for o in outcomes}
    after = converge(host, [web("two"), dict(web(), name="other")])
    assert [o.action for o in after] == ["replaced", "unchanged"]
    assert after[0].uuid != before["web"] and after[1].uuid == before["other"]
    assert running(host) == {"web": [after[0].uuid], "other": [before["other"]]}
    assert after[0].before["apps"][0]["environment"] == {"GREETING": "one"}


def test_check_mode_changes_nothing(host: Context) -> None:
    host.close()  # the fixture's store handle: its sqlite files would vanish when it closes
    before = sorted(str(p) for p in host.data_dir.rglob("*"))
    outcome = converge(host, [web()], check=True)[0]
    assert outcome.action == "created" and outcome.uuid is None
    assert sorted(str(p) for p in host.data_dir.rglob("*")) == before
    converge(host, [web()])
    assert converge(host, [web("two")], check=True)[0].action == "replaced"
    assert converge(host, [web()], check=True)[0].action == "unchanged"


def test_stopped_absent_and_exclusive(host: Context) -> None:
    converge(host, [web(), dict(web(), name="other")])
    assert converge(host, [dict(web(), state="stopped")])[0].action == "stopped"
    assert "web" not in {n for n, uuids in running(host).items() if uuids}
    assert converge(host, [dict(web(), state="stopped")])[0].action == "unchanged"
    assert converge(host, [{"name": "web", "state": "absent"}])[0].action == "removed"
    assert converge(host, [{"name": "web", "state": "absent"}])[0].action == "unchanged"
    outcomes = converge(host, [dict(web(), name="third")], exclusive=True)
    assert {o.name: o.action for o in outcomes} == {"third": "created", "other": "removed"}
    assert list(running(host)) == ["third"]


def test_a_pod_that_died_is_started_again(host: Context) -> None:
    first = converge(host, [web()])[0]
    pod = Pod.find(host.data_dir, first.uuid)
    os.kill(status(pod)["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pod.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    again = converge(host, [web()])[0]
    assert again.action == "started" and again.uuid != first.uuid


def test_boot_starts_the_declared_pods_again(host: Context) -> None:
    first = converge(host, [web(), dict(web(), name="idle", state="stopped")])[0]
    Rocket(host.data_dir)("stop", first.uuid)
    outcomes = boot(host)
    assert [(o.name, o.action) for o in outcomes] == [("web", "started")]
    assert len(running(host)["web"]) == 1 and "idle" not in running(host)
    assert [o.action for o in boot(host)] == ["unchanged"]


def test_pod_annotations_and_bad_specs(host: Context) -> None:
    outcome = converge(host, [web(annotations={"team": "blue"})])[0]
    manifest = json.loads(Pod.find(host.data_dir, outcome.uuid).files.manifest.read_bytes())
    names = {a["name"]: a["value"] for a in manifest["annotations"]}
    assert names["team"] == "blue" and names[NAME_ANNOTATION] == "web"
    for bad in ({"name": "Web", "apps": [{"image": "x"}]}, {"name": "web"}, dict(web(), nonsense=1),
                dict(web(), state="paused")):  # fmt: skip
        with pytest.raises(UsageError):
            converge(host, [bad])


def test_engine_copy_is_content_addressed(tmp_path: Path) -> None:
    root, new = install_engine(tmp_path / "engine")
    assert new and Path(root, "rocket", "stage1", "boot.py").exists()
    assert Path(root).name == engine_digest()[:32]
    assert install_engine(tmp_path / "engine") == (root, False)
    assert [p.name for p in (tmp_path / "engine").iterdir()] == [Path(root).name]
