"""`rocket image audit`: the trust decisions recorded in the audit log."""

from __future__ import annotations

import argparse

from ..audit import AuditLog
from .context import Context
from .output import add_format_flag, human_time, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="show the audit log of trust decisions")
    add_format_flag(parser)
    parser.add_argument("--limit", type=int, default=None, help="only the last N records")
    parser.set_defaults(run=run)


def describe(entry: dict) -> str:
    if entry["event"] == "verified":
        return f"key {entry['fingerprint']} (scope {entry['scope'] or 'root'})"
    if entry["event"] == "accepted-insecure":
        return f"--insecure-options={entry['flag']}"
    return str(entry.get("reason", entry.get("status", "")))


def run(args: argparse.Namespace, ctx: Context) -> int:
    entries = AuditLog(ctx.store().paths.audit_log).entries(limit=args.limit)
    if args.format == "json":
        print_json(entries)
        return 0
    rows = [
        [human_time(e["time"]), e["event"], e.get("name", e.get("pod", "")), str(e.get("image", ""))[:19], describe(e)]
        for e in entries
    ]
    print_table(["TIME", "EVENT", "NAME", "IMAGE", "DETAIL"], rows)
    return 0
