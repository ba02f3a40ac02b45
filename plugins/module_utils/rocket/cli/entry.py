"""The entry point of every `rocket` launcher: the console script, the /usr/bin/rocket of an engine copy
(modules/engine.py) and `python3 -m rocket`.

The cyclic garbage collector is off while the command starts: importing the engine and reading the
command's state allocate tens of thousands of objects and no garbage cycles, and the collector's passes
over them cost ~3 ms of every command (bench/start.py). main.run turns it back on before the verb's work;
for a pod start the supervisor does, once the pod's init is forked (stage1/supervisor.py).
"""

import gc


def main() -> None:
    gc.disable()
    from .main import main as run_command

    run_command()
