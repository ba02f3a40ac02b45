"""Tests for rocket.isolators: quantities, known isolator values, scope, multiplicity, conflicts."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from rocket.errors import ManifestError
from rocket.isolators import (
    DEFAULT_CAPABILITIES,
    KNOWN_ISOLATORS,
    LINUX_CAPABILITIES,
    check_isolators,
    cpu_millicores,
    memory_bytes,
    parse_quantity,
    unknown_isolators,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("20m", Fraction(1, 50)),
        ("1G", 10**9),
        ("4G", 4 * 10**9),
        ("123Mi", 123 * 2**20),
        ("125952Ki", 128974848),
        ("128974848", 128974848),
        ("1.5", Fraction(3, 2)),
        ("0.3", Fraction(3, 10)),
        (".5", Fraction(1, 2)),
        ("5.", 5),
        ("2e3", 2000),
        ("2E3", 2000),
        ("1e-3", Fraction(1, 1000)),
        ("1.5e+2", 150),
        ("1k", 1000),
        ("1E", 10**18),
        ("1Ei", 2**60),
        ("100n", Fraction(1, 10**7)),
        ("3u", Fraction(3, 10**6)),
        ("+1", 1),
        ("-1", -1),
        ("0", 0),
    ],
)
def test_parse_quantity(text: str, value: Fraction | int) -> None:
    parsed = parse_quantity(text)
    assert parsed == value
    if isinstance(value, int):
        assert type(parsed) is int


@pytest.mark.parametrize(
    "text", ["", " 1", "1 ", "m", "1.2.3", "1KB", "1K", "1e", "1ee3", "1mi", "abc", "1,5", "--1", "1e99", "10E", "."]
)
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_quantity(text, field="app.isolators[0].value.limit")
    assert (info.value.field, info.value.rule) == ("app.isolators[0].value.limit", "quantity")


def test_conversions_round_up() -> None:
    assert cpu_millicores(parse_quantity("500m")) == 500
    assert cpu_millicores(parse_quantity("1.5")) == 1500
    assert cpu_millicores(parse_quantity("100u")) == 1
    assert memory_bytes(parse_quantity("1Gi")) == 2**30
    assert memory_bytes(parse_quantity("1500m")) == 2


def test_default_capabilities() -> None:
    assert len(DEFAULT_CAPABILITIES) == 14
    assert len(set(DEFAULT_CAPABILITIES)) == 14
    assert set(DEFAULT_CAPABILITIES) <= set(LINUX_CAPABILITIES)
    assert len(LINUX_CAPABILITIES) == 41
    assert LINUX_CAPABILITIES[0] == "CAP_CHOWN"
    assert LINUX_CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


def iso(name: str, value: object) -> dict[str, Any]:
    return {"name": name, "value": value}


VALID_APP_ISOLATORS: list[list[dict[str, Any]]] = [
    [],
    [iso("resource/cpu", {"request": "250m", "limit": "500m"})],
    [iso("resource/cpu", {"limit": 2})],
    [iso("resource/memory", {"request": "1G", "limit": "2G", "default": False})],
    [iso("resource/memory", {"limit": 1.5e9})],
    [iso("resource/block-bandwidth", {"default": True, "limit": "2M"})],
    [iso("resource/network-bandwidth", {"default": True, "limit": "1G"})],
    [iso("os/linux/capabilities-retain-set", {"set": ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"]})],
    [iso("os/linux/capabilities-remove-set", {"set": ["CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_CHECKPOINT_RESTORE"]})],
    [iso("os/linux/no-new-privileges", True), iso("os/linux/no-new-privileges", False)],
    [iso("os/linux/seccomp-remove-set", {"errno": "EACCESS", "set": ["clock_settime", "reboot", "_llseek"]})],
    [iso("os/linux/seccomp-remove-set", {"errno": "E2BIG", "set": ["@appc.io/empty"]})],
    [iso("os/linux/seccomp-retain-set", {"errno": "", "set": ["@appc.io/all"]})],
    [iso("os/linux/seccomp-retain-set", {"set": ["@rkt/default-whitelist", "@docker/default-whitelist", "read"]})],
    [iso("os/linux/selinux-context", {"user": "system_u", "role": "system_r", "type": "dhcpc_t", "level": "s0:c1,c2"})],
    [iso("os/linux/apparmor-profile", "rocket-default")],
    [iso("os/linux/oom-score-adj", -1000), iso("os/linux/cpu-shares", 2)],
    [iso("os/linux/oom-score-adj", 1000), iso("os/linux/cpu-shares", 262144)],
    [iso("example.com/unknown", None), iso("example.com/other", {"anything": [1, 2]})],
    [
        iso("os/linux/seccomp-remove-set", {"set": ["reboot"]}),
        iso("os/linux/capabilities-remove-set", {"set": ["CAP_KILL"]}),
    ],
]


@pytest.mark.parametrize("isolators", VALID_APP_ISOLATORS)
def test_valid_app_isolators(isolators: list[dict[str, Any]]) -> None:
    assert check_isolators(isolators, field="app.isolators", pod_level=False) == isolators


def test_null_isolators_are_none() -> None:
    assert check_isolators(None, field="isolators", pod_level=True) == []


def test_pod_isolators() -> None:
    isolators = [
        iso("resource/memory", {"limit": "4G"}),
        iso("os/unix/sysctl", {"net.ipv4.tcp_fin_timeout": "6"}),
        iso("os/linux/selinux-context", {"user": "u", "role": "r", "type": "t", "level": "s0"}),
    ]
    assert check_isolators(isolators, field="isolators", pod_level=True) == isolators


def test_unknown_isolators_kept_and_reported() -> None:
    isolators = [iso("resource/cpu", {"limit": "1"}), iso("example.com/gpu", 1), iso("os/linux/future-thing", {})]
    assert check_isolators(isolators, field="isolators", pod_level=False) == isolators
    assert unknown_isolators(isolators) == ["example.com/gpu", "os/linux/future-thing"]
    assert "resource/cpu" in KNOWN_ISOLATORS
    assert "os/unix/sysctl" in KNOWN_ISOLATORS


CAPS = "os/linux/capabilities-retain-set"
SECCOMP = "os/linux/seccomp-remove-set"


@pytest.mark.parametrize(
    ("isolators", "field", "rule"),
    [
        ({"name": "resource/cpu"}, "app.isolators", "type"),
        ([None], "app.isolators[0]", "type"),
        ([{"value": 1}], "app.isolators[0].name", "required"),
        ([iso("Resource/CPU", 1)], "app.isolators[0].name", "ac-identifier"),
        ([{"name": "example.com/x"}], "app.isolators[0].value", "required"),
        ([iso("resource/cpu", "1")], "app.isolators[0].value", "type"),
        ([iso("resource/cpu", {})], "app.isolators[0].value.limit", "required"),
        ([iso("resource/cpu", {"limit": "fast"})], "app.isolators[0].value.limit", "quantity"),
        ([iso("resource/cpu", {"limit": True})], "app.isolators[0].value.limit", "type"),
        ([iso("resource/cpu", {"limit": "-1"})], "app.isolators[0].value.limit", "range"),
        ([iso("resource/cpu", {"limit": "1", "default": True})], "app.isolators[0].value.default", "resource-default"),
        ([iso("resource/memory", {"request": "2G", "limit": "1G"})], "app.isolators[0].value.request", "range"),
        (
            [iso("resource/memory", {"limit": "1G"}), iso("resource/memory", {"limit": "2G"})],
            "app.isolators[1].name",
            "unique",
        ),
        ([iso("resource/block-iops", {"limit": "1000"})], "app.isolators[0].value.default", "required"),
        (
            [iso("resource/block-iops", {"default": True, "request": "1", "limit": "2"})],
            "app.isolators[0].value.request",
            "resource-request",
        ),
        ([iso(CAPS, {"set": []})], "app.isolators[0].value.set", "required"),
        ([iso(CAPS, {})], "app.isolators[0].value.set", "required"),
        ([iso(CAPS, {"set": ["CAP_NET_ADMIN", "NET_ADMIN"]})], "app.isolators[0].value.set[1]", "capability"),
        ([iso(CAPS, {"set": ["cap_net_admin"]})], "app.isolators[0].value.set[0]", "capability"),
        ([iso(CAPS, {"set": ["CAP_FLY"]})], "app.isolators[0].value.set[0]", "capability"),
        ([iso(CAPS, {"set": [1]})], "app.isolators[0].value.set[0]", "type"),
        (
            [iso(CAPS, {"set": ["CAP_KILL"]}), iso("os/linux/capabilities-remove-set", {"set": ["CAP_KILL"]})],
            "app.isolators[1].name",
            "conflict",
        ),
        ([iso("os/linux/no-new-privileges", "true")], "app.isolators[0].value", "type"),
        ([iso(SECCOMP, {"set": []})], "app.isolators[0].value.set", "required"),
        ([iso(SECCOMP, {"set": ["reboot"], "errno": "-EPERM"})], "app.isolators[0].value.errno", "errno"),
        ([iso(SECCOMP, {"set": ["reboot"], "errno": "eperm"})], "app.isolators[0].value.errno", "errno"),
        ([iso(SECCOMP, {"set": ["reboot"], "errno": 1})], "app.isolators[0].value.errno", "type"),
        ([iso(SECCOMP, {"set": ["@appc.io/some"]})], "app.isolators[0].value.set[0]", "seccomp"),
        ([iso(SECCOMP, {"set": ["@"]})], "app.isolators[0].value.set[0]", "seccomp"),
        ([iso(SECCOMP, {"set": ["Reboot"]})], "app.isolators[0].value.set[0]", "seccomp"),
        (
            [iso(SECCOMP, {"set": ["reboot"]}), iso("os/linux/seccomp-retain-set", {"set": ["read"]})],
            "app.isolators[1].name",
            "conflict",
        ),
        ([iso(SECCOMP, {"set": ["reboot"]}), iso(SECCOMP, {"set": ["read"]})], "app.isolators[1].name", "unique"),
        (
            [iso("os/linux/selinux-context", {"user": "a:b", "role": "r", "type": "t", "level": "s0"})],
            "app.isolators[0].value.user",
            "selinux",
        ),
        (
            [iso("os/linux/selinux-context", {"user": "u", "role": "r", "type": "t"})],
            "app.isolators[0].value.level",
            "required",
        ),
        (
            [iso("os/linux/selinux-context", {"user": "u", "role": "", "type": "t", "level": "s0"})],
            "app.isolators[0].value.role",
            "required",
        ),
        ([iso("os/linux/apparmor-profile", "")], "app.isolators[0].value", "required"),
        ([iso("os/linux/oom-score-adj", 1001)], "app.isolators[0].value", "range"),
        ([iso("os/linux/oom-score-adj", 1.0)], "app.isolators[0].value", "type"),
        ([iso("os/linux/cpu-shares", 1)], "app.isolators[0].value", "range"),
        ([iso("os/linux/cpu-shares", 262145)], "app.isolators[0].value", "range"),
        ([iso("os/unix/sysctl", {"net.ipv4.ip_forward": "1"})], "app.isolators[0].name", "scope"),
    ],
)
def test_invalid_app_isolators(isolators: object, field: str, rule: str) -> None:
    with pytest.raises(ManifestError) as info:
        check_isolators(isolators, field="app.isolators", pod_level=False)
    assert (info.value.field, info.value.rule) == (field, rule)


@pytest.mark.parametrize(
    ("isolators", "field", "rule"),
    [
        ([iso(CAPS, {"set": ["CAP_KILL"]})], "isolators[0].name", "scope"),
        ([iso(SECCOMP, {"set": ["reboot"]})], "isolators[0].name", "scope"),
        ([iso("os/linux/no-new-privileges", True)], "isolators[0].name", "scope"),
        ([iso("os/unix/sysctl", {"a": 1})], "isolators[0].value.a", "type"),
        ([iso("os/unix/sysctl", ["a"])], "isolators[0].value", "type"),
        ([iso("os/unix/sysctl", {}), iso("os/unix/sysctl", {})], "isolators[1].name", "unique"),
    ],
)
def test_invalid_pod_isolators(isolators: object, field: str, rule: str) -> None:
    with pytest.raises(ManifestError) as info:
        check_isolators(isolators, field="isolators", pod_level=True)
    assert (info.value.field, info.value.rule) == (field, rule)
