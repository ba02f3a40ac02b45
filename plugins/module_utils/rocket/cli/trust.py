"""`rocket trust`: add a trusted key for a name prefix (or root), `trust list`, `trust rm FINGERPRINT`.

    rocket trust --prefix P | --root [--fingerprint F] [--skip-fingerprint-review] [KEY-FILE | URL]

With no key given, the keys are discovered from the prefix's `ac-discovery-pubkeys` meta tag. On a
terminal each key's fingerprint and user IDs are shown and the operator is asked; without one, either
`--fingerprint` pins the key (it must match) or `--skip-fingerprint-review` accepts it with a warning.
"""

from __future__ import annotations

import argparse
import sys
from typing import List

from ..errors import TrustError, UsageError
from ..keysource import OfferedKey, check_offered_key, obtain_keys
from ..keystore import Keystore, StoredKey
from ..openpgp import KeyInfo
from .context import Context
from .output import add_format_flag, human_time, print_json, print_table, say, tell


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trust", help="trust a key for images under a name prefix; trust list; trust rm")
    parser.add_argument("words", nargs="*", metavar="KEY-FILE|URL | list | rm FINGERPRINT | check-policy FILE")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--prefix", help="the image name prefix the key is trusted for (example.com/app)")
    scope.add_argument("--root", action="store_true", help="trust the key for every image name")
    parser.add_argument("--fingerprint", help="the key's fingerprint, pinned: the key must match it")
    parser.add_argument("--skip-fingerprint-review", action="store_true", help="accept the key without review")
    add_format_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    keystore = Keystore(local_config=ctx.local_config, system_config=ctx.system_config)
    if args.words[:1] == ["list"]:
        return _list(keystore, args)
    if args.words[:1] == ["check-policy"]:
        return _check_policy(args.words[1:])
    if args.words[:1] == ["rm"]:
        if len(args.words) != 2:
            raise UsageError("trust rm takes one fingerprint", hint="rocket trust rm --prefix P FINGERPRINT")
        for path in keystore.remove(args.words[1], prefix=args.prefix, root=args.root):
            say(f"removed {path}")
        return 0
    if not args.prefix and not args.root:
        raise UsageError("say which images the key is for", hint="pass --prefix NAME-PREFIX or --root")
    if len(args.words) > 1:
        raise UsageError("give at most one key file or URL")
    keys = _obtain_keys(args, ctx)
    for data, info in keys:
        _review(info, args)
        stored = keystore.add(data, prefix=args.prefix, root=args.root)
        scope = "root" if args.root else f"prefix {args.prefix!r}"
        say(f"Added key {stored.fingerprint} for {scope} at {stored.path}")
    return 0


def _check_policy(words: List[str]) -> int:
    """`trust check-policy FILE`: validate a policy document before it is put in place (TrustError if bad)."""
    from pathlib import Path

    from ..policy import parse_policy

    if len(words) != 1:
        raise UsageError("trust check-policy takes one file", hint="rocket trust check-policy policy.json")
    try:
        data = Path(words[0]).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {words[0]}: {exc.strerror}") from exc
    policy = parse_policy(data, source=Path(words[0]))
    say(f"{words[0]}: a valid policy, version {policy.version}")
    return 0


def _obtain_keys(args: argparse.Namespace, ctx: Context) -> List[OfferedKey]:
    if args.words:
        location = args.words[0]
    elif args.root:
        raise UsageError("a root key cannot be discovered", hint="give the key file or URL")
    else:
        location = None
    return obtain_keys(
        location,
        prefix=args.prefix,
        local_config=ctx.local_config,
        system_config=ctx.system_config,
        insecure=ctx.insecure,
    )


def _review(info: KeyInfo, args: argparse.Namespace) -> None:
    """Show the key and get the operator's consent, or check the pin; TrustError if refused."""
    scope = "every image (root)" if args.root else f"images under {args.prefix}"
    check_offered_key(info, pinned=[args.fingerprint] if args.fingerprint else None)
    if args.fingerprint:
        return
    if args.skip_fingerprint_review:
        tell(f"rocket: warning: trusting key {info.fingerprint} for {scope} without review")
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"key {info.fingerprint} needs a review, and there is no terminal to ask on",
            hint="pin it with --fingerprint, or pass --skip-fingerprint-review",
        )
    sys.stderr.write(f"Key fingerprint: {info.fingerprint} ({info.algorithm})\n")
    for uid in info.user_ids:
        sys.stderr.write(f"  user ID: {uid}\n")
    sys.stderr.write(f"Trust this key for {scope}? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise TrustError(f"key {info.fingerprint} was not accepted", reason="declined")


def _list(keystore: Keystore, args: argparse.Namespace) -> int:
    keys: List[StoredKey] = keystore.list()
    if args.prefix:
        keys = [key for key in keys if key.scope == args.prefix]
    if args.root:
        keys = [key for key in keys if key.scope == ""]
    if args.format == "json":
        print_json(
            [
                {
                    "fingerprint": key.fingerprint,
                    "prefix": key.scope,
                    "root": key.scope == "",
                    "source": key.source,
                    "path": str(key.path),
                    "user_ids": key.user_ids,
                    "expires": key.expires,
                    "revoked": key.revoked,
                }
                for key in keys
            ]
        )
        return 0
    rows = [
        [
            key.scope or "(root)",
            key.fingerprint,
            key.source,
            "revoked" if key.revoked else ("expires " + human_time(key.expires) if key.expires else "-"),
            ", ".join(key.user_ids),
        ]
        for key in keys
    ]
    print_table(["PREFIX", "FINGERPRINT", "SOURCE", "STATUS", "USER IDS"], rows)
    return 0
