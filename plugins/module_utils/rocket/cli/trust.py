"""`rocket trust`: add a trusted key for a name prefix (or root), `trust list`, `trust rm FINGERPRINT`.

    rocket trust --prefix P | --root [--fingerprint F] [--skip-fingerprint-review] [KEY-FILE | URL]

With no key given, the keys are discovered from the prefix's `ac-discovery-pubkeys` meta tag. On a
terminal each key's fingerprint and user IDs are shown and the operator is asked; without one, either
`--fingerprint` pins the key (it must match) or `--skip-fingerprint-review` accepts it with a warning.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Tuple

from ..errors import FetchError, TrustError, UsageError
from ..keystore import Keystore, StoredKey, check_fingerprint
from ..openpgp import KeyInfo, inspect_key, split_public_keys
from .context import Context
from .output import add_format_flag, human_time, print_json, print_table

MAX_KEY_SIZE = 1 << 20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trust", help="trust a key for images under a name prefix; trust list; trust rm")
    parser.add_argument("words", nargs="*", metavar="KEY-FILE|URL | list | rm FINGERPRINT")
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
    if args.words[:1] == ["rm"]:
        if len(args.words) != 2:
            raise UsageError("trust rm takes one fingerprint", hint="rocket trust rm --prefix P FINGERPRINT")
        for path in keystore.remove(args.words[1], prefix=args.prefix, root=args.root):
            print(f"removed {path}")
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
        print(f"Added key {stored.fingerprint} for {scope} at {stored.path}")
    return 0


def _obtain_keys(args: argparse.Namespace, ctx: Context) -> List[Tuple[bytes, KeyInfo]]:
    from ..discovery import discover, load_mirrors
    from ..transport import client_from_config

    client = client_from_config(ctx.local_config, ctx.system_config, insecure=ctx.insecure)
    if args.words:
        locations = [args.words[0]]
    else:
        if args.root:
            raise UsageError("a root key cannot be discovered", hint="give the key file or URL")
        endpoints = discover(
            args.prefix,
            {},
            client=client,
            insecure_http="http" in ctx.insecure,
            mirrors=load_mirrors(ctx.local_config),
            want="keys",
        )
        locations = endpoints.keys
    found: List[Tuple[bytes, KeyInfo]] = []
    for location in locations:
        if location.startswith(("https://", "http://", "file://")):
            data = client.get(location, max_size=MAX_KEY_SIZE).body
        else:
            try:
                with open(location, "rb") as stream:
                    data = stream.read(MAX_KEY_SIZE + 1)
            except OSError as exc:
                raise UsageError(f"cannot read key file {location}: {exc.strerror}") from exc
            if len(data) > MAX_KEY_SIZE:
                raise UsageError(f"key file {location} is over {MAX_KEY_SIZE} bytes")
        found.extend((key, inspect_key(key)) for key in split_public_keys(data))
    if not found:
        raise FetchError(f"no keys found for {args.prefix}", reason="not-found")
    return found


def _review(info: KeyInfo, args: argparse.Namespace) -> None:
    """Show the key and get the operator's consent, or check the pin; TrustError if refused."""
    scope = "every image (root)" if args.root else f"images under {args.prefix}"
    if info.revoked or (info.expires is not None and info.expires < time.time()):
        raise TrustError(
            f"key {info.fingerprint} is {'revoked' if info.revoked else 'expired'}",
            hint="ask the publisher for its current key",
            reason="revoked-key" if info.revoked else "expired-key",
        )
    if args.fingerprint:
        pinned = check_fingerprint(args.fingerprint)
        if pinned != info.fingerprint:
            raise TrustError(
                f"the key offered is {info.fingerprint}, not the pinned {pinned}",
                hint="the key was substituted or the pin is wrong; check the fingerprint with the publisher",
                reason="fingerprint-mismatch",
            )
        return
    if args.skip_fingerprint_review:
        print(f"rocket: warning: trusting key {info.fingerprint} for {scope} without review", file=sys.stderr)
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
