#!/usr/bin/env bash
# Set up a Debian 12 machine (as root) to develop, test and demo rocket: Debian packages, then a
# virtual environment in .venv with rocket installed from this checkout and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# nftables, containernetworking-plugins (the CNI plugins of non-built-in network types), iproute2 and
# python3-pyroute2 (pod networks for the system Python; the venv gets pyroute2 from PyPI) serve pod networks.
packages=(busybox-static gnupg python3-venv xz-utils bzip2 pigz nftables containernetworking-plugins iproute2 python3-pyroute2)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi

# Debian's own Python: the interpreter a managed host has, and it starts in a third of pyenv's time.
if [[ ! -x .venv/bin/python ]]; then
    /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
# ansible.cfg finds the collection here: this checkout as appc.rocket (a link made here, never tracked:
# ansible-test sanity refuses symlinks to folders).
mkdir -p .collections/ansible_collections/appc
ln -sfn ../../.. .collections/ansible_collections/appc/rocket
echo "setup: ok ($(.venv/bin/rocket version | head -n 1))"
