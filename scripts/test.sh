#!/usr/bin/env bash
# The test command: linters over the engine, then every test. Needs root for the integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check  # the paths are pyproject.toml's [tool.ruff] include
echo "== mypy"
mypy
echo "== engine imports on the oldest supported Python, where this machine has it"
for old in python3.9 python3.10; do
    if command -v "$old" >/dev/null 2>&1; then
        PYTHONPATH=plugins/module_utils "$old" -c "import rocket.cli.main, rocket.store, rocket.manifest" && echo "$old: ok"
    fi
done
echo "== pytest"
python -m pytest -q -p no:cacheprovider "$@"
