"""Isolator entries of image and pod manifests (appc spec/ace.md "Isolators"), checked by name.

Known isolators have their value checked and their scope (app, pod) and multiplicity enforced; unknown
isolators are kept as they are (the spec lets an executor ignore them, provided it says so), which is
more lenient than the Go reference 0.8.11: its App.assertValid rejects any isolator it cannot parse.
"""

from __future__ import annotations

import math

from .errors import ManifestError
from .names import (
    check_ac_identifier,
    child,
    expect_bool,
    expect_int,
    expect_list,
    expect_object,
    expect_string,
    item,
    require,
    show,
)
from .patterns import LazyPattern

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path

if TYPE_CHECKING:
    from fractions import Fraction
    from typing import Any, Callable

RESOURCE_CPU = "resource/cpu"
RESOURCE_MEMORY = "resource/memory"
RESOURCE_BLOCK_BANDWIDTH = "resource/block-bandwidth"
RESOURCE_BLOCK_IOPS = "resource/block-iops"
RESOURCE_NETWORK_BANDWIDTH = "resource/network-bandwidth"
CAPS_RETAIN = "os/linux/capabilities-retain-set"
CAPS_REMOVE = "os/linux/capabilities-remove-set"
NO_NEW_PRIVILEGES = "os/linux/no-new-privileges"
SECCOMP_RETAIN = "os/linux/seccomp-retain-set"
SECCOMP_REMOVE = "os/linux/seccomp-remove-set"
SELINUX_CONTEXT = "os/linux/selinux-context"
APPARMOR_PROFILE = "os/linux/apparmor-profile"
OOM_SCORE_ADJ = "os/linux/oom-score-adj"
CPU_SHARES = "os/linux/cpu-shares"
UNIX_SYSCTL = "os/unix/sysctl"

# The default capability bounding set of spec/ace.md (an app with no capability isolator gets these).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETFCAP",
    "CAP_SYS_CHROOT",
)

# Every Linux capability, numbers 0 (CAP_CHOWN) to 40 (CAP_CHECKPOINT_RESTORE), in kernel order.
# fmt: off
LINUX_CAPABILITIES: tuple[str, ...] = (
    # 0..4
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    # 5..9
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    # 10..14
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    # 15..19
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    # 20..24
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    # 25..29
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    # 30..34
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    # 35..39
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    # 40..40
    "CAP_CHECKPOINT_RESTORE",
)
# fmt: on
_CAPABILITY_SET = frozenset(LINUX_CAPABILITIES)

# Seccomp wildcards defined by the spec; other `@scope/name` groups belong to implementations.
SECCOMP_ALL = "@appc.io/all"
SECCOMP_EMPTY = "@appc.io/empty"
_SECCOMP_SYSCALL_RE = LazyPattern(r"[a-z0-9_]+")
_SECCOMP_GROUP_RE = LazyPattern(r"@[a-z0-9]+([-._~][a-z0-9]+)*(/[a-z0-9]+([-._~][a-z0-9]+)*)+")
_ERRNO_RE = LazyPattern(r"[A-Z][A-Z0-9]*")

# Kubernetes quantity: signed decimal number, then a binary-SI, decimal-SI or exponent suffix.
_QUANTITY_RE = LazyPattern(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)"
)
# Each suffix's factor as (numerator, denominator): fractions is imported only when a quantity is parsed.
_SUFFIX_FACTOR: dict[str, tuple[int, int]] = {
    "": (1, 1),
    "n": (1, 10**9),
    "u": (1, 10**6),
    "m": (1, 10**3),
    "k": (10**3, 1),
    "M": (10**6, 1),
    "G": (10**9, 1),
    "T": (10**12, 1),
    "P": (10**15, 1),
    "E": (10**18, 1),
    "Ki": (2**10, 1),
    "Mi": (2**20, 1),
    "Gi": (2**30, 1),
    "Ti": (2**40, 1),
    "Pi": (2**50, 1),
    "Ei": (2**60, 1),
}
_MAX_EXPONENT = 30
_MAX_QUANTITY = 2**63 - 1


# --- Quantities ------------------------------------------------------------------------------------


def parse_quantity(text: str, *, field: str = "") -> Fraction | int:
    """Value of a Kubernetes quantity (`500m` -> 1/2, `1G` -> 10**9, `123Mi`, `2e3`); int when whole."""
    match = _QUANTITY_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ManifestError(
            f"{field or 'quantity'} must be a quantity such as 500m, 1.5, 1G, 123Mi or 2e3, not {show(text)}",
            field=field,
            rule="quantity",
        )
    from fractions import Fraction

    value = Fraction(match["number"])
    if match["exponent"]:
        power = int(match["exponent"][1:])
        if abs(power) > _MAX_EXPONENT:
            raise ManifestError(
                f"{field or 'quantity'}: exponent of {text!r} is out of range", field=field, rule="quantity"
            )
        value *= Fraction(10) ** power
    else:
        value *= Fraction(*_SUFFIX_FACTOR[match["suffix"] or ""])
    if match["sign"] == "-":
        value = -value
    if abs(value) > _MAX_QUANTITY:
        raise ManifestError(f"{field or 'quantity'}: {text!r} is too large", field=field, rule="quantity")
    return value.numerator if value.denominator == 1 else value


def memory_bytes(quantity: Fraction | int) -> int:
    """Bytes for a parsed memory quantity, rounded up to a whole byte."""
    return math.ceil(quantity)


def cpu_millicores(quantity: Fraction | int) -> int:
    """Millicores for a parsed CPU quantity (1 core = 1000), rounded up."""
    from fractions import Fraction

    return math.ceil(Fraction(quantity) * 1000)


def _quantity(value: object, *, field: str) -> Fraction | int:
    # The Go reference (Kubernetes' Quantity) also reads an unquoted JSON number.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if abs(value) > _MAX_QUANTITY:
            raise ManifestError(f"{field}: {show(value)} is too large", field=field, rule="quantity")
        value = str(value)
    if not isinstance(value, str):
        raise ManifestError(
            f'{field} must be a quantity string such as "1G", not {show(value)}', field=field, rule="type"
        )
    return parse_quantity(value, field=field)


# --- Value checks, one per known isolator ----------------------------------------------------------


def _check_resource(value: object, field: str, *, default_required: bool) -> None:
    obj = expect_object(value, field=field)
    default = obj.get("default")
    if default is not None and expect_bool(default, field=child(field, "default")) != default_required:
        raise ManifestError(
            f"{child(field, 'default')} must be {str(default_required).lower()} for this resource",
            field=child(field, "default"),
            rule="resource-default",
        )
    if default_required and default is None:
        raise ManifestError(
            f"{child(field, 'default')} must be true for this resource", field=child(field, "default"), rule="required"
        )
    parsed: dict[str, Fraction | int] = {}
    for key in ("request", "limit"):
        if obj.get(key) is not None:
            parsed[key] = _quantity(obj[key], field=child(field, key))
            # Negative amounts are meaningless for every resource; the Go reference does not check.
            if parsed[key] < 0:
                raise ManifestError(
                    f"{child(field, key)} must not be negative, not {show(obj[key])}",
                    field=child(field, key),
                    rule="range",
                )
    if default_required and "request" in parsed:
        raise ManifestError(
            f"{child(field, 'request')} is not supported by this resource",
            field=child(field, "request"),
            rule="resource-request",
        )
    if not parsed:
        raise ManifestError(f"{field} must set a limit or a request", field=child(field, "limit"), rule="required")
    if "request" in parsed and "limit" in parsed and parsed["request"] > parsed["limit"]:
        raise ManifestError(
            f"{child(field, 'request')} ({obj['request']}) exceeds {child(field, 'limit')} ({obj['limit']})",
            field=child(field, "request"),
            rule="range",
        )


def _check_cpu_or_memory(value: object, field: str) -> None:
    _check_resource(value, field, default_required=False)


def _check_per_device_resource(value: object, field: str) -> None:
    _check_resource(value, field, default_required=True)


def _check_capabilities(value: object, field: str) -> None:
    at = child(field, "set")
    caps = expect_list(require(expect_object(value, field=field), "set", field=field), field=at)
    if not caps:
        raise ManifestError(f"{at} must not be empty", field=at, rule="required")
    for index, cap in enumerate(caps):
        name = expect_string(cap, field=item(at, index))
        if name not in _CAPABILITY_SET:
            # The spec writes capabilities as CAP_*; the reference checks nothing. Suggest the spelling.
            guess = "CAP_" + name.upper()
            hint = f"did you mean {guess}?" if guess in _CAPABILITY_SET else "see capabilities(7)"
            raise ManifestError(
                f"{item(at, index)}: unknown capability {show(cap)}",
                field=item(at, index),
                rule="capability",
                hint=hint,
            )


def _check_seccomp(value: object, field: str) -> None:
    obj = expect_object(value, field=field)
    at = child(field, "set")
    entries = expect_list(require(obj, "set", field=field), field=at)
    if not entries:
        raise ManifestError(f"{at} must not be empty", field=at, rule="required")
    for index, entry in enumerate(entries):
        text = expect_string(entry, field=item(at, index))
        if text.startswith("@appc.io/"):
            valid = text in (SECCOMP_ALL, SECCOMP_EMPTY)
        elif text.startswith("@"):
            valid = _SECCOMP_GROUP_RE.fullmatch(text) is not None
        else:
            valid = _SECCOMP_SYSCALL_RE.fullmatch(text) is not None
        if not valid:
            raise ManifestError(
                f"{item(at, index)} must be a syscall name, {SECCOMP_ALL}, {SECCOMP_EMPTY} or an @scope/group, "
                f"not {show(text)}",
                field=item(at, index),
                rule="seccomp",
            )
    errno = obj.get("errno")
    if errno is not None:
        text = expect_string(errno, field=child(field, "errno"))
        # Any upper-case name is accepted, known or not (the spec's own example says EACCESS).
        if text and not _ERRNO_RE.fullmatch(text):
            raise ManifestError(
                f"{child(field, 'errno')} must be an upper-case errno name, not {show(text)}",
                field=child(field, "errno"),
                rule="errno",
            )


def _check_selinux(value: object, field: str) -> None:
    obj = expect_object(value, field=field)
    for key in ("user", "role", "type", "level"):
        text = expect_string(require(obj, key, field=field), field=child(field, key), non_empty=True)
        if key != "level" and ":" in text:
            raise ManifestError(
                f"{child(field, key)} must not contain ':', not {show(text)}", field=child(field, key), rule="selinux"
            )


def _check_apparmor(value: object, field: str) -> None:
    # Not in the appc reference: rocket reads the value as the name of a loaded AppArmor profile.
    expect_string(value, field=field, non_empty=True)


def _check_no_new_privileges(value: object, field: str) -> None:
    expect_bool(value, field=field)


def _check_oom_score_adj(value: object, field: str) -> None:
    expect_int(value, field=field, low=-1000, high=1000)


def _check_cpu_shares(value: object, field: str) -> None:
    expect_int(value, field=field, low=2, high=262144)


def _check_sysctl(value: object, field: str) -> None:
    for key, setting in expect_object(value, field=field).items():
        if not key:
            raise ManifestError(f"{field}: a sysctl name must not be empty", field=field, rule="required")
        expect_string(setting, field=child(field, key))


_APP, _POD, _BOTH = "app", "pod", "app or pod"

# name -> (value check, scope of spec/ace.md, several instances allowed as in the Go reference)
_KNOWN: dict[str, tuple[Callable[[object, str], None], str, bool]] = {
    RESOURCE_CPU: (_check_cpu_or_memory, _BOTH, False),
    RESOURCE_MEMORY: (_check_cpu_or_memory, _BOTH, False),
    RESOURCE_BLOCK_BANDWIDTH: (_check_per_device_resource, _BOTH, False),
    RESOURCE_BLOCK_IOPS: (_check_per_device_resource, _BOTH, False),
    RESOURCE_NETWORK_BANDWIDTH: (_check_per_device_resource, _BOTH, False),
    CAPS_RETAIN: (_check_capabilities, _APP, True),
    CAPS_REMOVE: (_check_capabilities, _APP, True),
    NO_NEW_PRIVILEGES: (_check_no_new_privileges, _APP, True),
    SECCOMP_RETAIN: (_check_seccomp, _APP, False),
    SECCOMP_REMOVE: (_check_seccomp, _APP, False),
    SELINUX_CONTEXT: (_check_selinux, _BOTH, False),
    APPARMOR_PROFILE: (_check_apparmor, _BOTH, False),
    OOM_SCORE_ADJ: (_check_oom_score_adj, _BOTH, False),
    CPU_SHARES: (_check_cpu_shares, _BOTH, False),
    UNIX_SYSCTL: (_check_sysctl, _POD, False),
}
KNOWN_ISOLATORS: frozenset[str] = frozenset(_KNOWN)

# Pairs that cannot appear in one isolator list. The reference only pairs the seccomp sets; the spec text
# also says "the retain set cannot be used in conjunction with the remove set" for capabilities.
_CONFLICTS: dict[str, str] = {
    CAPS_RETAIN: CAPS_REMOVE,
    CAPS_REMOVE: CAPS_RETAIN,
    SECCOMP_RETAIN: SECCOMP_REMOVE,
    SECCOMP_REMOVE: SECCOMP_RETAIN,
}


def check_isolators(value: object, *, field: str, pod_level: bool) -> list[dict[str, Any]]:
    """Return the isolator list (null = none) unchanged; raise ManifestError on the first invalid entry."""
    isolators: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    level = _POD if pod_level else _APP
    for index, entry in enumerate(expect_list(value, field=field)):
        at = item(field, index)
        obj = expect_object(entry, field=at)
        name_at = child(at, "name")
        name = check_ac_identifier(require(obj, "name", field=at), field=name_at)
        if "value" not in obj:
            raise ManifestError(f"{child(at, 'value')} is required", field=child(at, "value"), rule="required")
        known = _KNOWN.get(name)
        if known is not None:
            check, scope, multiple = known
            if scope not in (_BOTH, level):
                raise ManifestError(
                    f"{name_at}: isolator {name} applies to an {scope}, not to a {level}", field=name_at, rule="scope"
                )
            check(obj["value"], child(at, "value"))
            if name in seen and not multiple:
                raise ManifestError(
                    f"{name_at}: only one {name} isolator is allowed (first at {item(field, seen[name])})",
                    field=name_at,
                    rule="unique",
                )
            other = _CONFLICTS.get(name)
            if other is not None and other in seen:
                raise ManifestError(
                    f"{name_at}: {name} cannot be combined with {other} (at {item(field, seen[other])})",
                    field=name_at,
                    rule="conflict",
                )
        seen.setdefault(name, index)
        isolators.append(obj)
    return isolators


def unknown_isolators(isolators: list[dict[str, Any]]) -> list[str]:
    """Names of isolators rocket does not know, in order (the runtime must report them as ignored)."""
    return [entry["name"] for entry in isolators if entry.get("name") not in KNOWN_ISOLATORS]
