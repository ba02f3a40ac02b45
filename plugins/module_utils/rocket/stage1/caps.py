"""An app's Linux capabilities: resolved from the appc isolators, then applied between fork and exec.

Resolution (capability_number, resolve_capabilities) runs where manifests are read; it imports the
engine's isolators and errors modules only when called, because together they pull in typing, re,
fractions and json: 18-26 ms measured under `python3 -I -S`, half of a pod start's budget. Applying a
set (what the supervisor does before every exec) needs nothing beyond ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os

from . import linux

TYPE_CHECKING = False  # see linux.py
if TYPE_CHECKING:
    from typing import Iterable, Optional

    from ..errors import UsageError

CAP_SYS_ADMIN = 21

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _usage_error(message: str, *, hint: str, **context: object) -> UsageError:
    from ..errors import UsageError  # deferred, see the module docstring

    return UsageError(message, hint=hint, **context)


# --- Resolution ------------------------------------------------------------------------------------


def capability_number(name: str) -> int:
    """Number of capability `name` (`CAP_NET_ADMIN`; case and the CAP_ prefix optional); UsageError if unknown."""
    from ..isolators import LINUX_CAPABILITIES  # deferred, see the module docstring

    wanted = name.strip().upper()
    if not wanted.startswith("CAP_"):
        wanted = "CAP_" + wanted
    try:
        return LINUX_CAPABILITIES.index(wanted)
    except ValueError:
        raise _usage_error(
            f"unknown capability {name!r}",
            hint=f"use a name from capabilities(7), {LINUX_CAPABILITIES[0]} to {LINUX_CAPABILITIES[-1]}",
            capability=name,
        ) from None


def capability_name(number: int) -> str:
    """The CAP_* name of capability `number`, or `CAP_<number>` for one newer than this table."""
    from ..isolators import LINUX_CAPABILITIES  # deferred, see the module docstring

    return LINUX_CAPABILITIES[number] if 0 <= number < len(LINUX_CAPABILITIES) else f"CAP_{number}"


def resolve_capabilities(
    isolators: list,
    *,
    retain: Optional[Iterable[str]] = None,
    remove: Optional[Iterable[str]] = None,
) -> set[int]:
    """The capability numbers an app keeps, after the appc rules and the --caps-retain/--caps-remove overrides.

    Without capability isolators an app gets the spec's default set of 14. A capabilities-retain-set
    replaces that set (several of them add up); a capabilities-remove-set takes its entries out of it.
    `retain` or `remove` (rocket run --caps-retain / --caps-remove) replace the manifest's capability
    isolators, as rkt's flags did. Manifest validation keeps retain and remove sets apart; this function
    rejects the combination too (UsageError), as it rejects both overrides at once.
    """
    from .. import isolators as iso  # deferred, see the module docstring

    if retain is not None and remove is not None:
        raise _usage_error(
            "--caps-retain and --caps-remove cannot be combined",
            hint="give the complete set with --caps-retain, or what to take away with --caps-remove",
        )
    default = {capability_number(name) for name in iso.DEFAULT_CAPABILITIES}
    if retain is not None:
        return {capability_number(name) for name in retain}
    if remove is not None:
        return default - {capability_number(name) for name in remove}
    retained: Optional[set[int]] = None
    removed: set[int] = set()
    for entry in isolators:
        name = entry.get("name")
        if name not in (iso.CAPS_RETAIN, iso.CAPS_REMOVE):
            continue
        numbers = {capability_number(cap) for cap in (entry.get("value") or {}).get("set") or []}
        if name == iso.CAPS_RETAIN:
            retained = numbers if retained is None else retained | numbers
        else:
            removed |= numbers
    if retained is not None and removed:
        raise _usage_error(
            f"an app cannot have both {iso.CAPS_RETAIN} and {iso.CAPS_REMOVE}",
            hint="keep one of the two isolators (the manifest should not have validated)",
        )
    return retained if retained is not None else default - removed


# --- Reading the current sets ----------------------------------------------------------------------


def _capbset_has(cap: int) -> Optional[bool]:
    """Whether `cap` is in the bounding set; None if the kernel does not know `cap`."""
    try:
        return linux.prctl(linux.PR_CAPBSET_READ, cap) == 1
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise


def last_capability() -> int:
    """The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap, else probed)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as stream:
            return int(stream.read())
    except (OSError, ValueError):  # no /proc (yet): ask the kernel one capability at a time
        last = 0
        while _capbset_has(last + 1) is not None:
            last += 1
        return last


def _mask_to_set(mask: int) -> set[int]:
    return {cap for cap in range(mask.bit_length()) if mask >> cap & 1}


def current_bounding_set() -> set[int]:
    """The capability numbers in this process's bounding set (CapBnd of /proc/self/status)."""
    try:
        with open("/proc/self/status", "rb") as stream:
            for line in stream:
                if line.startswith(b"CapBnd:"):
                    return _mask_to_set(int(line.split()[1], 16))
    except OSError:
        pass
    return {cap for cap in range(last_capability() + 1) if _capbset_has(cap)}


def current_effective_set() -> set[int]:
    """The capability numbers in this thread's effective set (capget(2), no /proc needed)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    linux.syscall("capget", ctypes.byref(header), data)
    return _mask_to_set(data[0].effective | data[1].effective << 32)


# --- Applying a set --------------------------------------------------------------------------------


def drop_bounding_set(keep: set[int]) -> None:
    """Drop every capability not in `keep` from the bounding set; needs CAP_SETPCAP, idempotent.

    The set is read once (/proc/self/status) rather than asked about capability by capability: an app
    start spent ~0.4 ms in those prctl calls."""
    for cap in sorted(current_bounding_set() - keep):
        linux.prctl(linux.PR_CAPBSET_DROP, cap)


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for word in (0, 1):
        data[word].effective = effective >> (32 * word) & 0xFFFFFFFF
        data[word].permitted = permitted >> (32 * word) & 0xFFFFFFFF
        data[word].inheritable = inheritable >> (32 * word) & 0xFFFFFFFF
    linux.syscall("capset", ctypes.byref(header), data)


def apply_capabilities(keep: set[int], *, uid: int) -> None:
    """Confine this thread to `keep` and become `uid`; call as root in a forked child right before execve.

    In runc's order: the bounding set loses everything else; the ambient set is cleared; a non-root
    `uid` is taken with PR_SET_KEEPCAPS so the permitted set survives the switch; effective, permitted
    and inheritable become `keep` (capset(2)); and for a non-root `uid` the kept capabilities are raised
    into the ambient set, the only way they survive an exec of a file without file capabilities. Groups
    and gid are the caller's to set before (they need CAP_SETGID, which `keep` may lack). Capabilities
    newer than the running kernel are left out: it could not grant them.
    """
    last = last_capability()
    keep = {cap for cap in keep if 0 <= cap <= last}
    drop_bounding_set(keep)
    try:
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: a kernel before 4.3 has no ambient set to clear
            raise
    if uid != 0:
        linux.prctl(linux.PR_SET_KEEPCAPS, 1)
        os.setresuid(uid, uid, uid)
        linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    mask = sum(1 << cap for cap in keep)
    _capset(mask, mask, mask)
    if uid != 0:
        for cap in sorted(keep):
            linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
