"""The pod's init: PID 1 of the pod's PID namespace.

It builds every app's root, then runs the apps: for each, its pre-start handler to completion, then the
app. It reaps every process (orphans included, as PID 1 must), records each app's exit, and when an app
fails it stops the others; on SIGTERM it stops all of them (TERM, a grace period, KILL). After the apps,
the post-stop handlers run. The restart policy (`no`, `on-failure`, `always`, with exponential backoff)
starts the set again. Its exit code is the pod's: the failing app's, else 0.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time

from ..fileio import atomic_write
from ..record import Record
from .launch import Launch, exec_app
from .rootfs import RootPlan, build_root

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the pod-start path
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional

STOP_TIMEOUT = 10.0
BACKOFF_START = 0.5
BACKOFF_MAX = 60.0
STOP_POLL = 0.05  # how often a backoff looks for a stop request


class AppRun(Record):
    """Everything init needs for one app."""

    FIELDS = ("name", "root", "main", "pre_start", "post_stop", "stdout", "status_path", "terminal")

    def __init__(
        self,
        name: str,
        root: RootPlan,
        main: Launch,
        pre_start: Optional[Launch] = None,
        post_stop: Optional[Launch] = None,
        stdout: int = 1,
        status_path: str = "",
        terminal: bool = False,
    ) -> None:
        self.name = name
        self.root = root
        self.main = main
        self.pre_start = pre_start
        self.post_stop = post_stop
        self.stdout = stdout  # the descriptors the app writes to (pipes to the supervisor's log relay)
        self.status_path = status_path
        # `stdout` is a terminal of the pod's own (terminal.py): the app reads it too, and leads a
        # session whose controlling terminal it is.
        self.terminal = terminal


class PodRun(Record):
    FIELDS = ("apps", "restart", "stop_timeout", "status_path", "on_event", "pids")

    def __init__(
        self,
        apps: List[AppRun],
        restart: str = "no",
        stop_timeout: float = STOP_TIMEOUT,
        status_path: str = "",
        on_event: Optional[Callable[[str, Dict[str, object]], None]] = None,
        pids: Optional[Dict[str, int]] = None,
    ) -> None:
        self.apps = apps
        self.restart = restart
        self.stop_timeout = stop_timeout
        self.status_path = status_path
        self.on_event = on_event
        self.pids = {} if pids is None else pids


def _decode(status: int) -> Dict[str, object]:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return {"exit_code": 128 + signum, "signal": signal.Signals(signum).name}
    return {"exit_code": os.WEXITSTATUS(status), "signal": None}


def _spawn(launch: Launch, stdout: int, *, terminal: bool = False) -> int:
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if terminal:
            from .terminal import take_terminal

            take_terminal(stdout)
        elif stdout != 1:
            os.dup2(stdout, 1)
            os.dup2(stdout, 2)
        exec_app(launch)
    return pid


class PodInit:
    """The state of PID 1 while the apps run."""

    def __init__(self, pod: PodRun) -> None:
        self.pod = pod
        self.stopping = False
        self.requested_stop = False
        self.first_failure: Optional[str] = None
        self.running: Dict[int, AppRun] = {}
        self.results: Dict[str, Dict[str, object]] = {}
        self.pre_start: Optional[int] = None  # the pid of a pre-start handler while it runs

    def _record(self, app: AppRun, result: Dict[str, object]) -> None:
        self.results[app.name] = result
        if app.status_path:
            atomic_write(app.status_path, json.dumps(result, sort_keys=True).encode(), durable=False)

    def _run_to_end(self, launch: Launch, stdout: int, *, pre_start: bool = False) -> int:
        """Run a handler to completion, reaping whatever else exits meanwhile. A stop reaches a
        pre-start handler as it reaches the apps; a post-stop handler runs because of one."""
        pid = _spawn(launch, stdout)
        if pre_start:
            self.pre_start = pid
        try:
            return self._wait_for(pid)
        finally:
            self.pre_start = None

    def _wait_for(self, pid: int) -> int:
        while True:
            try:
                done, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 127
            except InterruptedError:
                continue
            if done == pid:
                return int(_decode(status)["exit_code"])  # type: ignore[call-overload]
            self._reaped(done, status)

    def _reaped(self, pid: int, status: int) -> None:
        app = self.running.pop(pid, None)
        if app is None:
            return  # an orphan re-parented to PID 1
        result = dict(self.results.get(app.name, {}))
        result.update(_decode(status), finished=time.time())
        self._record(app, result)
        if int(result["exit_code"]) != 0 and not self.stopping:  # type: ignore[call-overload]
            self.first_failure = self.first_failure or app.name
            self.stop_all(signal.SIGTERM)

    def stop_all(self, signum: int) -> None:
        """TERM every app, then KILL what is left after the grace period."""
        self.stopping = True
        for pid in list(self.running):
            _signal(pid, signum)
        deadline = time.monotonic() + self.pod.stop_timeout
        while self.running and time.monotonic() < deadline:
            self._reap_nowait()
            time.sleep(0.02)
        for pid in list(self.running):
            _signal(pid, signal.SIGKILL)

    def _reap_nowait(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._reaped(pid, status)

    def run_once(self) -> int:
        """Start every app (after its pre-start), wait for all, run post-stops; the pod's exit code."""
        self.stopping = False
        self.results = {}
        self.first_failure = None
        for app in self.pod.apps:
            if self.requested_stop:
                break  # stopped while an earlier app's pre-start ran: start nothing more
            started = time.time()
            if app.pre_start is not None and self._run_to_end(app.pre_start, app.stdout, pre_start=True) != 0:
                self._record(
                    app,
                    {
                        "exit_code": 1,
                        "signal": None,
                        "started": started,
                        "finished": time.time(),
                        "error": "pre-start failed",
                    },
                )
                self.stop_all(signal.SIGTERM)
                break
            if self.requested_stop:
                break  # stopped during this app's pre-start
            pid = _spawn(app.main, app.stdout, terminal=app.terminal)
            self.running[pid] = app
            self.pod.pids[app.name] = pid
            self._record(app, {"started": started, "pid": pid, "exit_code": None})
        while self.running:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            self._reaped(pid, status)
        for app in self.pod.apps:
            if app.post_stop is not None:
                self._run_to_end(app.post_stop, app.stdout)
        if self.first_failure is not None:  # the app whose failure stopped the others decides
            return int(self.results[self.first_failure]["exit_code"])  # type: ignore[call-overload]
        codes = [int(self.results.get(app.name, {}).get("exit_code") or 0) for app in self.pod.apps]  # type: ignore[call-overload]
        return next((code for code in codes if code != 0), 0)

    def terminate(self, signum: int, _frame: object) -> None:
        self.requested_stop = True
        self.stopping = True
        for pid in self._stoppable():
            _signal(pid, signal.SIGTERM)
        # run_once's wait loop reaps them; whatever still runs when the grace period ends is killed.
        signal.signal(signal.SIGALRM, self.kill_remaining)
        signal.setitimer(signal.ITIMER_REAL, self.pod.stop_timeout)

    def kill_remaining(self, _signum: int, _frame: object) -> None:
        for pid in self._stoppable():
            _signal(pid, signal.SIGKILL)

    def _stoppable(self) -> List[int]:
        return [*self.running, *([self.pre_start] if self.pre_start is not None else [])]


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def pod_init_main(pod: PodRun) -> int:
    """Build the roots, then run the apps under the restart policy; returns the pod's exit code."""
    for app in pod.apps:
        build_root(app.root)
    init = PodInit(pod)
    signal.signal(signal.SIGTERM, init.terminate)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # ignored on entry stays ignored (nohup &)
        signal.signal(signal.SIGINT, init.terminate)
    backoff = BACKOFF_START
    while True:
        started = time.monotonic()
        code = init.run_once()
        if init.requested_stop:
            return code
        if not (pod.restart == "always" or (pod.restart == "on-failure" and code != 0)):
            return code
        if time.monotonic() - started > BACKOFF_MAX:
            backoff = BACKOFF_START  # it ran a good while: a fresh failure, not a crash loop
        if pod.on_event is not None:
            pod.on_event("restart", {"exit_code": code, "backoff": backoff})
        # A stop during the backoff ends the pod now: it must neither wait out the backoff (up to a
        # minute) nor start the apps again. A signal handler does not cut time.sleep short.
        deadline = time.monotonic() + backoff
        while not init.requested_stop and time.monotonic() < deadline:
            time.sleep(min(STOP_POLL, max(deadline - time.monotonic(), 0)))
        if init.requested_stop:
            return code
        backoff = min(backoff * 2, BACKOFF_MAX)
