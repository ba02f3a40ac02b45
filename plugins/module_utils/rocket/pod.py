"""A pod's state is the folder it is in, plus whether its supervisor holds its lock.

    pods/embryo/<uuid>          created, nothing in it yet
    pods/prepare/<uuid>         being prepared (locked by the preparing command)
    pods/prepared/<uuid>        ready to run
    pods/run/<uuid>             running while locked by its supervisor; exited once the lock is free
    pods/exited-garbage/<uuid>  exited, kept for `status` and `logs` until gc's grace period ends
    pods/garbage/<uuid>         being deleted

Every move is one rename, done by the function named after the transition, which checks the pod is in
the state the move starts from, holds the pod's lock and syncs the parent folders. The allowed moves are
listed in TRANSITIONS and in docs/pods.md; any other is a PodStateError naming both ends. The lock is an
flock on the pod folder itself, so it follows the folder through renames and the kernel drops it when the
holder dies: a supervisor killed with SIGKILL leaves a pod that `status` reports as exited.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from pathlib import Path

from .errors import NotFoundError, PodStateError, StoreError, UsageError
from .fileio import atomic_write, fsync_dir, remove_tree
from .paths import pod_state_dir as state_dir
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

EMBRYO = "embryo"
PREPARE = "prepare"
PREPARED = "prepared"
RUN = "run"
EXITED_GARBAGE = "exited-garbage"
GARBAGE = "garbage"
STATES = (EMBRYO, PREPARE, PREPARED, RUN, EXITED_GARBAGE, GARBAGE)

TRANSITIONS = {
    EMBRYO: (PREPARE,),
    PREPARE: (PREPARED, GARBAGE),
    PREPARED: (RUN, GARBAGE),
    RUN: (EXITED_GARBAGE,),
    EXITED_GARBAGE: (GARBAGE,),
    GARBAGE: (),
}

MIN_UUID_PREFIX = 4
HANDOVER = "handover"  # present while a supervisor started by systemd takes the pod's lock over
HANDOVER_FRESH = 60.0


CGROUP_PARENT_FILE = "cgroup-parent"  # the delegated cgroup a systemd-started pod lives under (cgroups.py)


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical text: uuid4()'s, without importing uuid and platform."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class PodFiles(Record):
    """Named paths inside one pod folder (they move with it)."""

    FIELDS = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def manifest(self) -> Path:
        return self.root / "pod"

    @property
    def runtime(self) -> Path:
        return self.root / "runtime.json"

    @property
    def supervisor(self) -> Path:
        return self.root / "supervisor"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    def cgroup_parent(self) -> Optional[str]:
        """The delegated cgroup the pod's cgroups are under, if its supervisor ran as a systemd unit."""
        try:
            return (self.root / CGROUP_PARENT_FILE).read_text().strip() or None
        except OSError:
            return None

    @property
    def network(self) -> Path:
        """What the pod's networks became: interfaces, addresses, ports (written by the supervisor)."""
        return self.root / "net.json"

    @property
    def etc(self) -> Path:
        """The pod's generated `hosts` and `resolv.conf`, bound into each app's /etc."""
        return self.root / "etc"

    def app_dir(self, app: str) -> Path:
        return self.root / "apps" / app

    def app_status(self, app: str) -> Path:
        return self.app_dir(app) / "status.json"

    def app_log(self, app: str) -> Path:
        return self.app_dir(app) / "log"

    def app_rootfs(self, app: str) -> Path:
        return self.app_dir(app) / "rootfs"

    def app_upper(self, app: str) -> Path:
        return self.app_dir(app) / "upper"

    def app_work(self, app: str) -> Path:
        return self.app_dir(app) / "work"


class Pod:
    """One pod folder and, while held, its lock."""

    def __init__(self, data_dir: Path, uuid: str, state: str) -> None:
        self.data_dir = data_dir
        self.uuid = uuid
        self.state = state
        self._lock_fd: Optional[int] = None
        # `run` prepares and starts at once: a crash in between leaves a pod gc removes either way, so its
        # moves skip the fsyncs that make a `prepare`d pod survive a power loss.
        self.durable = True

    @property
    def path(self) -> Path:
        return state_dir(self.data_dir, self.state) / self.uuid

    @property
    def files(self) -> PodFiles:
        return PodFiles(self.path)

    # -- creation and lookup --------------------------------------------------------------------

    @classmethod
    def create(cls, data_dir: Path) -> Pod:
        """A new embryo pod with a fresh UUID, locked by the caller."""
        for state in STATES:
            state_dir(data_dir, state).mkdir(mode=0o711, parents=True, exist_ok=True)
        pod = cls(data_dir, new_uuid(), EMBRYO)
        pod.path.mkdir(mode=0o711)
        pod.lock()
        return pod

    @classmethod
    def find(cls, data_dir: Path, reference: str) -> Pod:
        """The pod whose UUID is `reference` or starts with it (at least 4 characters)."""
        text = reference.strip().lower()
        if len(text) < MIN_UUID_PREFIX:
            raise UsageError(f"pod UUID prefix {reference!r} is too short", hint="give at least 4 characters")
        matches = [pod for pod in cls.all(data_dir) if pod.uuid.startswith(text)]
        if not matches:
            raise NotFoundError(f"no pod {reference!r}", hint="see 'rocket list'", reference=reference)
        if len({pod.uuid for pod in matches}) > 1:
            shown = ", ".join(pod.uuid[:8] for pod in matches[:5])
            raise StoreError(f"pod UUID prefix {reference!r} is ambiguous: {shown}", hint="give more characters")
        return matches[0]

    @classmethod
    def all(cls, data_dir: Path) -> List[Pod]:
        """Every pod in every state (a pod seen twice mid-rename is listed in its later state)."""
        found: Dict[str, Pod] = {}
        for state in STATES:
            try:
                names = os.listdir(state_dir(data_dir, state))
            except FileNotFoundError:
                continue
            for name in names:
                found[name] = cls(data_dir, name, state)
        return sorted(found.values(), key=lambda pod: pod.uuid)

    # -- the lock -------------------------------------------------------------------------------

    def lock(self, *, blocking: bool = False) -> None:
        """Take the pod's exclusive lock; PodStateError if another process holds it."""
        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PodStateError(f"pod {self.uuid} moved or was removed", hint="try again") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise PodStateError(
                    f"pod {self.uuid} is in use by another process", hint="wait for it, or stop the pod", pod=self.uuid
                ) from None
            raise
        self._lock_fd = fd

    def lock_fd(self) -> int:
        """The descriptor holding the lock (the supervisor inherits it and keeps it for the pod's life)."""
        if self._lock_fd is None:
            raise AssertionError(f"bug: pod {self.uuid} is not locked")
        return self._lock_fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def is_locked_by_other(self) -> bool:
        """True while some process (a supervisor, a preparing command) holds the pod's lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    # -- transitions ----------------------------------------------------------------------------

    def _move(self, to: str) -> None:
        if to not in TRANSITIONS[self.state]:
            raise PodStateError(
                f"pod {self.uuid} cannot go from {self.state} to {to}",
                hint="see 'rocket status' for its state",
                pod=self.uuid,
                state=self.state,
                to=to,
            )
        source = self.path
        target = state_dir(self.data_dir, to) / self.uuid
        try:
            os.rename(source, target)
        except FileNotFoundError:
            raise PodStateError(f"pod {self.uuid} was moved by another command", pod=self.uuid) from None
        if self.durable:
            fsync_dir(source.parent)
            fsync_dir(target.parent)
        self.state = to

    def to_preparing(self) -> None:
        """embryo -> prepare, under the creator's lock."""
        self._move(PREPARE)

    def to_prepared(self) -> None:
        """prepare -> prepared once everything the pod needs is on disk."""
        self._move(PREPARED)

    def to_run(self) -> None:
        """prepared -> run, by the process that becomes (or starts) the supervisor, holding the lock."""
        self._move(RUN)

    def to_exited_garbage(self) -> None:
        """run -> exited-garbage, once no supervisor holds the lock."""
        if self.state == RUN and self._lock_fd is None and (self.is_locked_by_other() or self.is_starting()):
            raise PodStateError(f"pod {self.uuid} is still running", hint="stop it first", pod=self.uuid)
        self._move(EXITED_GARBAGE)

    def to_garbage(self) -> None:
        """prepare/prepared/exited-garbage -> garbage, before deletion."""
        self._move(GARBAGE)

    def delete(self) -> None:
        """Remove a garbage pod's folder."""
        if self.state != GARBAGE:
            raise AssertionError(f"bug: deleting pod {self.uuid} in state {self.state}")
        remove_tree(self.path)

    # -- records --------------------------------------------------------------------------------

    def read_json(self, path: Path) -> Dict[str, Any]:
        try:
            value = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def runtime(self) -> Dict[str, Any]:
        return self.read_json(self.files.runtime)

    def write_json(self, path: Path, value: Dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(value, sort_keys=True).encode())

    def created(self) -> float:
        return float(self.runtime().get("created", 0.0))

    def is_running(self) -> bool:
        return self.state == RUN and self.is_locked_by_other()

    def is_starting(self) -> bool:
        """In run/, its lock between the starting command and a supervisor that systemd is launching."""
        try:
            age = time.time() - (self.path / HANDOVER).stat().st_mtime
        except FileNotFoundError:
            return False
        return self.state == RUN and age < HANDOVER_FRESH and not self.is_locked_by_other()

    def display_state(self) -> str:
        """rkt's names: embryo, preparing, prepared, running, exited, garbage."""
        if self.state == RUN:
            if self.is_locked_by_other():
                return "running"
            return "starting" if self.is_starting() else "exited"
        return {EMBRYO: "embryo", PREPARE: "preparing", PREPARED: "prepared", EXITED_GARBAGE: "exited"}.get(
            self.state, "garbage"
        )
