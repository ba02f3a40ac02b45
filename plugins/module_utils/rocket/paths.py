"""Every on-disk path of rocket, from one small named function each.

The data directory (`--dir`, default /var/lib/rocket):

    cas/index.db                 sqlite index of images (name, labels, times, size, how trusted)
    cas/images/<image-id>/       one imported image: `manifest`, `rootfs/`, `skeleton`
    cas/rendered/<key>/          an image rendered with its dependencies: `rootfs/`, `layers.json`
    cas/tmp/<random>/            work in progress; removed by the next command once its lock is free
    cas/downloads/               resumable downloads and, per URL, what it gave last (ETag, max-age, image ID)
    pods/<state>/<uuid>/         one pod (see pod.py and docs/pods.md)
    networks/<name>/             host-local IPAM of one network: a lease file per address, `lock`
    trust/policy-version         the highest trust policy version loaded (rollback guard)
    metadata/hmac.key            the host's key for the metadata service's sign/verify
    locks/                       flock files (the kernel drops them when their process dies)
    audit.jsonl                  append-only log of trust decisions and pod events (one JSON object a line)

A config folder (`--local-config` /etc/rocket, `--system-config` /usr/lib/rocket): `trustedkeys/`,
`policy.json`, `auth.d/`, and in the local one only `net.d/`, `certs.d/`, `mirrors.json`, `decryption/`.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/rocket")
DEFAULT_LOCAL_CONFIG = Path("/etc/rocket")
DEFAULT_SYSTEM_CONFIG = Path("/usr/lib/rocket")
DEFAULT_RUN_DIR = Path("/run/rocket")


# --- the config folders (local, /etc/rocket, and system, /usr/lib/rocket, have the same shape) -------


def trustedkeys_dir(config: Path) -> Path:
    """`<config>/trustedkeys`: the keystore of one config folder."""
    return config / "trustedkeys"


def root_keys_dir(config: Path) -> Path:
    """`<config>/trustedkeys/root.d`: keys trusted for every name."""
    return trustedkeys_dir(config) / "root.d"


def prefix_keys_root(config: Path) -> Path:
    """`<config>/trustedkeys/prefix.d`: one sub-folder path per prefix."""
    return trustedkeys_dir(config) / "prefix.d"


def scope_dir(config: Path, scope: str) -> Path:
    """The folder of the keys of one scope ('' is the root scope)."""
    return root_keys_dir(config) if scope == "" else prefix_keys_root(config) / scope


def key_path(config: Path, scope: str, fingerprint: str) -> Path:
    """The file of one key in one scope."""
    return scope_dir(config, scope) / fingerprint


def policy_path(config: Path) -> Path:
    """`<config>/policy.json`: the trust policy of one config folder."""
    return config / "policy.json"


def auth_dir(config: Path) -> Path:
    """`<config>/auth.d`: credential files, rkt's format."""
    return config / "auth.d"


def ca_dir(local_config: Path) -> Path:
    """`<local>/certs.d`: extra CA certificates (PEM, `*.pem` or `*.crt`) for private sites."""
    return local_config / "certs.d"


def net_config_dir(local_config: Path) -> Path:
    """`<local>/net.d`: the operator's networks, CNI configuration files (`*.conf`) read in lexical order."""
    return local_config / "net.d"


def mirrors_path(local_config: Path) -> Path:
    """`<local>/mirrors.json`: name prefixes sent to other sites or local folders."""
    return local_config / "mirrors.json"


def decryption_dir(local_config: Path) -> Path:
    """`<local>/decryption`: the passphrase or secret keys for encrypted images."""
    return local_config / "decryption"


# --- the data directory (`--dir`) --------------------------------------------------------------------


def policy_version_path(state_dir: Path) -> Path:
    """`<dir>/trust/policy-version`: the highest policy version ever loaded on this host."""
    return state_dir / "trust" / "policy-version"


def policy_version_lock(state_dir: Path) -> Path:
    """The flock file that serialises reading and raising the stored policy version."""
    return state_dir / "trust" / "policy-version.lock"


def hmac_key_path(data_dir: Path) -> Path:
    """`<dir>/metadata/hmac.key`: the host's key for the metadata service's sign and verify."""
    return data_dir / "metadata" / "hmac.key"


def pods_dir(data_dir: Path) -> Path:
    """`<dir>/pods`: one folder per pod state (see pod.py)."""
    return data_dir / "pods"


def pod_state_dir(data_dir: Path, state: str) -> Path:
    """`<dir>/pods/<state>`: the pods in one state."""
    return pods_dir(data_dir) / state


def network_leases_dir(data_dir: Path, network: str) -> Path:
    """`<dir>/networks/<name>`: the address leases of one network (host-local IPAM)."""
    return data_dir / "networks" / network


def audit_log_path(data_dir: Path) -> Path:
    """`<dir>/audit.jsonl`: the append-only audit log."""
    return data_dir / "audit.jsonl"


class StorePaths:
    """Named paths under one data directory; creating them is the store's job, not this class's."""

    def __init__(self, root: os.PathLike[str] | str) -> None:
        self.root = Path(root)

    @property
    def cas(self) -> Path:
        return self.root / "cas"

    @property
    def index_db(self) -> Path:
        return self.cas / "index.db"

    @property
    def images(self) -> Path:
        return self.cas / "images"

    @property
    def rendered(self) -> Path:
        return self.cas / "rendered"

    @property
    def tmp(self) -> Path:
        return self.cas / "tmp"

    @property
    def downloads(self) -> Path:
        return self.cas / "downloads"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def audit_log(self) -> Path:
        return audit_log_path(self.root)

    def image_dir(self, image_id: str) -> Path:
        return self.images / image_id

    def image_manifest(self, image_id: str) -> Path:
        return self.image_dir(image_id) / "manifest"

    def image_rootfs(self, image_id: str) -> Path:
        return self.image_dir(image_id) / "rootfs"

    def image_skeleton(self, image_id: str) -> Path:
        return self.image_dir(image_id) / "skeleton"

    def rendered_dir(self, key: str) -> Path:
        return self.rendered / key

    def image_lock(self, image_id: str) -> Path:
        return self.locks / f"image-{image_id}.lock"

    def store_lock(self) -> Path:
        """Held shared by every command that uses images, exclusively by gc and rm."""
        return self.locks / "store.lock"

    def tmp_lock(self, work_dir: Path) -> Path:
        return work_dir.with_name(work_dir.name + ".lock")
