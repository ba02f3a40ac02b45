"""The isolation flavors: what each isolates, and one list of names for the CLI and stage1."""

from __future__ import annotations

import pytest

from rocket.errors import UsageError
from rocket.lifecycle import FLAVORS
from rocket.stage1 import linux
from rocket.stage1.flavor import FLAVORS as STAGE1_FLAVORS
from rocket.stage1.flavor import flavor_named


def test_the_cli_offers_exactly_the_flavors_stage1_has() -> None:
    assert set(FLAVORS) == set(STAGE1_FLAVORS)


def test_ns_isolates_everything_and_fly_only_the_mounts() -> None:
    ns, fly = flavor_named("ns"), flavor_named("fly")
    assert (
        ns.namespaces(private_network=True)
        == linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWNET
    )
    assert not ns.namespaces(private_network=False) & linux.CLONE_NEWNET
    assert fly.namespaces(private_network=True) == linux.CLONE_NEWNS and not fly.private_network(True)
    assert (ns.pid_namespace, ns.metadata_service, ns.host_view) == (True, True, False)
    assert (fly.pid_namespace, fly.metadata_service, fly.host_view) == (False, False, True)


def test_fly_keeps_what_the_manifest_asks_for() -> None:
    fly = flavor_named("fly")
    assert fly.capabilities({0, 1}, explicit=True) == {0, 1}
    assert len(fly.capabilities({0, 1}, explicit=False)) > 2
    assert fly.seccomp("plan", explicit=True) == "plan" and fly.seccomp("plan", explicit=False) is None
    assert flavor_named("ns").seccomp("plan", explicit=False) == "plan"


def test_unknown_flavor() -> None:
    with pytest.raises(UsageError):
        flavor_named("kvm")
