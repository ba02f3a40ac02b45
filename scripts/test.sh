#!/usr/bin/env bash
# The test command: linters over the engine, then every test. Needs root for the integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check  # the paths are pyproject.toml's [tool.ruff] include
echo "== mypy"
mypy
echo "== the engine imports on Python 3.9, the oldest a managed host may have (where one is here)"
for old in /usr/bin/python3.9 "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.9*/bin/python3.9; do
    [[ -x "$old" ]] || continue
    PYTHONPATH=plugins/module_utils "$old" -I -c "import sys; sys.path.insert(0, 'plugins/module_utils'); import rocket.cli.main, rocket.fetch, rocket.store" \
        || { echo "the engine does not import on $old" >&2; exit 1; }
    echo "$old: ok"
done
echo "== pytest"
python -m pytest -q -p no:cacheprovider "$@"
# ---- Ansible gates (issue 6): ansible-test sanity, ansible-lint production, galaxy build+install, ansible-doc.
# About 1-4 minutes (the first run builds ansible-test's environments under .build/). ROCKET_SKIP_ANSIBLE_CHECKS=1
# skips it, e.g. while iterating on one test file.
if [[ ${ROCKET_SKIP_ANSIBLE_CHECKS:-} != 1 ]]; then
    echo "== ansible checks"
    bash scripts/ansible-checks.sh
fi
