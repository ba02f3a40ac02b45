"""The entry point of every `rocket` launcher: the console script, the /usr/bin/rocket of an engine copy
(modules/engine.py) and `python3 -m rocket`.

The cyclic garbage collector is off while the command starts: importing the engine and reading the
command's state allocate tens of thousands of objects and no garbage cycles, and the collector's passes
over them cost ~3 ms of every command (bench/start.py). main.run turns it back on before the verb's work;
for a pod start the supervisor does, once the pod's init is forked (stage1/supervisor.py).

A command that moves processes into cgroups (a pod start, `enter`) first starts cgroup_warmup's thread,
so that the kernel's wait before the first move runs while the engine is imported, not on the way of
the pod's init.
"""

import gc
import sys

# Verbs that start a pod: their supervisor turns the garbage collector on (see above).
POD_STARTS = ("run", "run-prepared")
# Verbs whose processes join cgroups. Any word of the command line counts: a false match only costs
# a thread that moves this process to where it is for a moment.
CGROUP_MOVERS = frozenset((*POD_STARTS, "enter"))


def main() -> None:
    gc.disable()
    if not CGROUP_MOVERS.isdisjoint(sys.argv[1:]):
        from .. import cgroup_warmup

        cgroup_warmup.start()
    from .main import main as run_command

    run_command()
