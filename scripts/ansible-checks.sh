#!/usr/bin/env bash
# The Ansible gates of the collection: ansible-test sanity on the whole collection placed under
# ansible_collections/appc/rocket, ansible-lint's production profile on the repository, a galaxy build then
# install, and ansible-doc for every module. Needs scripts/setup.sh's .venv; reaches no network but PyPI.
#
# Everything it makes goes under .build/ (untracked): the collection tree, ansible-test's virtual
# environments (kept, so a second run takes a fraction of the first), the built and the installed collection.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=$repo/.venv/bin
build=$repo/.build
tree=$build/ansible_collections/appc/rocket
export PATH="$venv:$PATH"

seconds() { date +%s; }
took() { echo "   ($(($(seconds) - $1))s)"; }

echo "== ansible: the collection tree ($tree)"
# A copy of the files git knows (tracked and new, not ignored) rather than a symlink to the checkout:
# a tracked symlink to a folder fails sanity (DESIGN.md), and the copy is what `galaxy build` would see.
rm -rf "$build/ansible_collections" "$build/dist" "$build/installed"
mkdir -p "$tree"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' file; do
        if [[ -e $file || -L $file ]]; then printf '%s\0' "$file"; fi # skip files deleted but not yet committed
    done |
    tar --null -T - -cf - | tar -xf - -C "$tree"
# Its own (empty) git repository: ansible-test lists a collection's files with git when it finds a .git
# above them, and the checkout's would hide this ignored copy; in its own repository every file is new.
git -C "$tree" init -q

echo "== ansible: ansible-test sanity"
started=$(seconds)
# ansible-test builds a virtual environment per test and bootstraps pip into it with a get-pip.py that it
# downloads from a host this machine cannot reach. Its documented way out is a script saved in its cache
# (under HOME, here a private one in .build/); this one takes pip from the interpreter's own ensurepip and
# then installs the pinned pip and the test's requirements from the package index.
home=$build/ansible-test-home
pip_version=$(python - <<'EOF'
import pathlib
import re

import ansible_test

text = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", text).group(1))
EOF
)
mkdir -p "$home/.ansible/test/cache"
cat >"$home/.ansible/test/cache/get_pip_${pip_version//./_}.py" <<'EOF'
"""Stands in for get-pip.py: ensurepip's pip, then `pip install` of what ansible-test asks for."""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade", *args])
EOF
# The interpreters the compile and import tests run on: the real binaries of each Python the machine has,
# never pyenv's shims (they answer to every version name and then fail for all but the selected one).
interpreters=/usr/bin:/bin
pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for version in 3.9 3.10 3.12 3.13; do
    for bin in "$pyenv_root"/versions/"$version".*/bin; do
        if [[ -x $bin/python$version ]]; then interpreters=$interpreters:$bin && break; fi
    done
done
skips=()
if ! command -v shellcheck >/dev/null; then
    # Not a network matter: the test needs the shellcheck program (Debian: apt-get install shellcheck).
    echo "   skipped: shellcheck (the shellcheck program is not installed)"
    skips+=(--skip-test shellcheck)
fi
# pslint needs PowerShell and checks only .ps1 files, of which the collection has none: it skips itself.
(cd "$tree" && HOME=$home PATH=$venv:$interpreters ansible-test sanity --venv --color no "${skips[@]}")
took "$started"

echo "== ansible: ansible-lint --profile production"
started=$(seconds)
ansible-lint --profile production # what it reads and skips: .ansible-lint
took "$started"

echo "== ansible: ansible-galaxy collection build, then install"
started=$(seconds)
ansible-galaxy collection build "$tree" --output-path "$build/dist" --force
archive=$(ls "$build"/dist/appc-rocket-*.tar.gz)
ansible-galaxy collection install "$archive" --collections-path "$build/installed" --offline --force
took "$started"

echo "== ansible: ansible-doc renders every module of the installed collection"
for module in plugins/modules/*.py; do
    name=appc.rocket.$(basename "$module" .py)
    ANSIBLE_COLLECTIONS_PATH=$build/installed ansible-doc "$name" >"$build/$name.txt" ||
        { echo "ansible-doc $name failed" >&2; exit 1; }
    if ! grep -q "EXAMPLES" "$build/$name.txt" || ! grep -q "RETURN VALUES" "$build/$name.txt"; then
        echo "ansible-doc $name shows no EXAMPLES or RETURN VALUES (see $build/$name.txt)" >&2
        exit 1
    fi
    echo "   $name: ok"
done
echo "ansible checks: ok"
