"""The order of an app's last steps before exec (stage1/launch.py): its cgroups' files are opened on the
host's paths, its root entered, then the cgroups joined (the join may wait for the kernel), then the
cgroup namespace made and the app confined."""

from __future__ import annotations

from pathlib import Path
from typing import List, NoReturn

import pytest

from rocket.stage1 import launch
from rocket.stage1.launch import Identity, Launch, Restrictions


class Execed(BaseException):
    """Stands in for execve: exec_app catches Exception, not this."""


def record_steps(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    steps: List[str] = []
    real_join = launch.join_cgroups

    def join(fds: List[int]) -> None:
        steps.append("join cgroups")
        real_join(fds)

    def execve(*_args: object) -> NoReturn:
        steps.append("exec")
        raise Execed

    monkeypatch.setattr(launch, "enter_root", lambda root: steps.append(f"enter root {root}"))
    monkeypatch.setattr(launch, "join_cgroups", join)
    monkeypatch.setattr(launch.linux, "unshare", lambda flags: steps.append(f"unshare {flags:#x}"))
    monkeypatch.setattr(launch, "confine", lambda restrictions, identity: steps.append("confine"))
    monkeypatch.setattr(launch.os, "chdir", lambda path: None)
    monkeypatch.setattr(launch.os, "execve", execve)
    return steps


def app(procs: List[Path]) -> Launch:
    restrictions = Restrictions(cgroup_procs=[str(path) for path in procs])
    return Launch("web", ["/bin/true"], {}, "/pods/x/apps/web/rootfs", "/", Identity(), restrictions)


def test_the_root_is_entered_before_the_cgroups_are_joined(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    procs = [tmp_path / "cpu.procs", tmp_path / "memory.procs"]
    for path in procs:
        path.write_text("")
    steps = record_steps(monkeypatch)
    with pytest.raises(Execed):
        launch.exec_app(app(procs))
    assert steps == ["enter root /pods/x/apps/web/rootfs", "join cgroups", "unshare 0x2000000", "confine", "exec"]
    assert [path.read_text() for path in procs] == ["0", "0"]  # "0": this process


def test_an_entered_process_joins_without_a_root_or_namespace_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    steps = record_steps(monkeypatch)
    with pytest.raises(Execed):
        launch.exec_app(app([procs]), enter=False)
    assert steps == ["join cgroups", "confine", "exec"]


def test_a_cgroup_that_cannot_be_opened_stops_the_app_before_its_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def exit_now(code: int) -> NoReturn:
        raise SystemExit(code)

    steps = record_steps(monkeypatch)
    monkeypatch.setattr(launch.os, "_exit", exit_now)
    with pytest.raises(SystemExit) as exited:
        launch.exec_app(app([tmp_path / "gone" / "cgroup.procs"]))
    assert exited.value.code == launch.EXIT_CANNOT_START
    assert steps == []
    assert "cannot start" in capsys.readouterr().err
