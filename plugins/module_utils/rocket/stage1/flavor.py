"""Isolation flavors: what a pod's supervisor isolates, chosen per pod (`--flavor`), behind one interface.

ns   (default) new mount, UTS, IPC, PID and (unless --net=host) network namespaces, a cgroup
     namespace per app, the pod's own /proc, /sys and /dev, the spec's default capabilities and
     rocket's seccomp filter, and the metadata service.
fly  rkt's stage1-fly, for host-level tools: only a mount namespace for the app roots; the host's
     PID, network, IPC and UTS namespaces and its /proc, /sys and /dev; the capabilities root has
     on this host and no seccomp filter unless the manifest or --seccomp asks; no metadata service
     (on the host's loopback it would clash between pods and be open to every host process).
"""

from __future__ import annotations

from ..errors import UsageError
from . import linux

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Dict, Optional, Set


class Flavor:
    """The namespaced pod (`ns`); other flavors override what they isolate differently."""

    name = "ns"
    pid_namespace = True
    cgroup_namespace = True
    own_hostname = True
    host_view = False  # the host's /proc, /sys and /dev instead of the pod's own
    metadata_service = True

    def namespaces(self, *, private_network: bool) -> int:
        """The CLONE_NEW* flags the supervisor unshares before forking init (PID comes later, apart)."""
        flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
        return flags | (linux.CLONE_NEWNET if private_network else 0)

    def private_network(self, requested: bool) -> bool:
        return requested

    def capabilities(self, resolved: Set[int], *, explicit: bool) -> Set[int]:
        """The capabilities an app keeps, given those the isolators and flags resolved to."""
        return resolved

    def seccomp(self, resolved: Optional[object], *, explicit: bool) -> Optional[object]:
        """The seccomp plan an app gets, given the one resolved from isolators, flags and defaults."""
        return resolved


class FlyFlavor(Flavor):
    """rkt's fly: a chroot into the image in the host's namespaces."""

    name = "fly"
    pid_namespace = False
    cgroup_namespace = False
    own_hostname = False
    host_view = True
    metadata_service = False

    def namespaces(self, *, private_network: bool) -> int:
        return linux.CLONE_NEWNS

    def private_network(self, requested: bool) -> bool:
        return False

    def capabilities(self, resolved: Set[int], *, explicit: bool) -> Set[int]:
        from .caps import current_bounding_set

        return resolved if explicit else current_bounding_set()  # all root may have on this host

    def seccomp(self, resolved: Optional[object], *, explicit: bool) -> Optional[object]:
        return resolved if explicit else None


FLAVORS: Dict[str, Flavor] = {flavor.name: flavor for flavor in (Flavor(), FlyFlavor())}


def flavor_named(name: str) -> Flavor:
    """The flavor of that name; UsageError naming the known ones otherwise."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise UsageError(f"unknown isolation flavor {name!r}", hint="use one of: " + ", ".join(FLAVORS)) from None
