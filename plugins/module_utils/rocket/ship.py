"""Names every module of the engine, so that Ansible packs all of them into a module's payload.

Ansible's module_utils finder ships only the files a module imports (it reads the import statements);
the engine copy a module installs for its pod supervisors and the rocket command must be whole, or its
digest would differ from module to module. `engine_copy` names this function; nothing calls it.
tests/unit/test_engine_copy.py checks that the list below holds every file of the package.
"""

# ruff: noqa: F401
from __future__ import annotations


def every_module() -> None:  # pragma: no cover - read by Ansible, never run
    from . import __main__ as ___main__
    from . import audit as _audit
    from . import auth as _auth
    from . import build as _build
    from . import cgroup_warmup as _cgroup_warmup
    from . import cgroups as _cgroups
    from . import compression as _compression
    from . import decrypt as _decrypt
    from . import desired as _desired
    from . import discovery as _discovery
    from . import engine_copy as _engine_copy
    from . import errors as _errors
    from . import extract as _extract
    from . import fetch as _fetch
    from . import fileio as _fileio
    from . import garbage as _garbage
    from . import index as _index
    from . import isolators as _isolators
    from . import keysource as _keysource
    from . import keystore as _keystore
    from . import lifecycle as _lifecycle
    from . import limits as _limits
    from . import locks as _locks
    from . import manifest as _manifest
    from . import metadata as _metadata
    from . import metadata_http as _metadata_http
    from . import metadata_token as _metadata_token
    from . import mountinfo as _mountinfo
    from . import names as _names
    from . import openpgp as _openpgp
    from . import paths as _paths
    from . import patterns as _patterns
    from . import pod as _pod
    from . import podspec as _podspec
    from . import policy as _policy
    from . import record as _record
    from . import render as _render
    from . import sign as _sign
    from . import skeleton as _skeleton
    from . import store as _store
    from . import tarstream as _tarstream
    from . import transport as _transport
    from . import treecopy as _treecopy
    from . import users as _users
    from . import verify as _verify
    from .cli import boot as _cli_boot
    from .cli import config as _cli_config
    from .cli import context as _cli_context
    from .cli import entry as _cli_entry
    from .cli import fetch as _cli_fetch
    from .cli import flagspec as _cli_flagspec
    from .cli import image_audit as _cli_image_audit
    from .cli import image_build as _cli_image_build
    from .cli import image_cat_manifest as _cli_image_cat_manifest
    from .cli import image_export as _cli_image_export
    from .cli import image_extract as _cli_image_extract
    from .cli import image_gc as _cli_image_gc
    from .cli import image_list as _cli_image_list
    from .cli import image_rm as _cli_image_rm
    from .cli import image_validate as _cli_image_validate
    from .cli import image_verify as _cli_image_verify
    from .cli import main as _cli_main
    from .cli import output as _cli_output
    from .cli import parser as _cli_parser
    from .cli import pod_cat_manifest as _cli_pod_cat_manifest
    from .cli import pod_enter as _cli_pod_enter
    from .cli import pod_export as _cli_pod_export
    from .cli import pod_gc as _cli_pod_gc
    from .cli import pod_list as _cli_pod_list
    from .cli import pod_logs as _cli_pod_logs
    from .cli import pod_prepare as _cli_pod_prepare
    from .cli import pod_rm as _cli_pod_rm
    from .cli import pod_run as _cli_pod_run
    from .cli import pod_run_prepared as _cli_pod_run_prepared
    from .cli import pod_status as _cli_pod_status
    from .cli import pod_stop as _cli_pod_stop
    from .cli import podflags as _cli_podflags
    from .cli import progress as _cli_progress
    from .cli import quickparse as _cli_quickparse
    from .cli import trust as _cli_trust
    from .cli import units as _cli_units
    from .cli import version as _cli_version
    from .net import attach as _net_attach
    from .net import cni as _net_cni
    from .net import config as _net_config
    from .net import dns as _net_dns
    from .net import ipam as _net_ipam
    from .net import nftables as _net_nftables
    from .net import rtnl as _net_rtnl
    from .stage1 import boot as _stage1_boot
    from .stage1 import caps as _stage1_caps
    from .stage1 import enter as _stage1_enter
    from .stage1 import flavor as _stage1_flavor
    from .stage1 import init as _stage1_init
    from .stage1 import launch as _stage1_launch
    from .stage1 import linux as _stage1_linux
    from .stage1 import plan as _stage1_plan
    from .stage1 import rootfs as _stage1_rootfs
    from .stage1 import seccomp as _stage1_seccomp
    from .stage1 import supervisor as _stage1_supervisor
    from .stage1 import syscalls_aarch64 as _stage1_syscalls_aarch64
    from .stage1 import syscalls_x86_64 as _stage1_syscalls_x86_64
    from .stage1 import terminal as _stage1_terminal
