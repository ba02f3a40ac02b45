"""Trust with real gpg keys: the keystore, the policy, gpgv verification and the trust decision."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from gpgkeys import GpgHome, Keyring, TestKey, make_keyring
from rocket.errors import NotFoundError, TrustError, UsageError
from rocket.keystore import Keystore, StoredKey, prefix_covers
from rocket.policy import RKT_POLICY, Policy, Requirement, load_policy, parse_policy, policy_version_path
from rocket.verify import check_trust, verify_signature


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    base = tmp_path_factory.mktemp("gpg")
    data = base / "image.aci"
    data.write_bytes(b"an image archive\n" * 1000)
    home = GpgHome(base / "home")
    try:
        yield make_keyring(home, data)
    finally:
        home.close()


@dataclass
class Host:
    """The config and state folders of one host under tmp_path."""

    local: Path
    system: Path
    state: Path

    @property
    def keystore(self) -> Keystore:
        return Keystore(local_config=self.local, system_config=self.system)

    def load(self) -> Policy:
        return load_policy(local_config=self.local, system_config=self.system, state_dir=self.state)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path / "etc", tmp_path / "usr-lib", tmp_path / "var-lib")


@pytest.fixture
def keystore(host: Host) -> Keystore:
    return host.keystore


def refusal(call: Callable[[], object]) -> Any:
    """The `reason` of the TrustError that `call` raises (the test fails if it raises none)."""
    with pytest.raises(TrustError) as excinfo:
        call()
    return excinfo.value.context.get("reason")


def write_policy(config: Path, document: Dict[str, Any]) -> None:
    config.mkdir(parents=True, exist_ok=True)
    (config / "policy.json").write_text(json.dumps(document))


def policy_of(document: Dict[str, Any]) -> Policy:
    return parse_policy(json.dumps(document).encode(), source=Path("/etc/rocket/policy.json"))


def system_key(system: Path, key: TestKey, scope: str = "") -> Path:
    """Install a key into the system config by hand, as a vendor package would."""
    folder = system / "trustedkeys" / ("root.d" if not scope else f"prefix.d/{scope}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / key.fingerprint).write_bytes(key.armored)
    return folder / key.fingerprint


def fingerprints(stored: List[StoredKey]) -> List[str]:
    return [key.fingerprint for key in stored]


# --- keystore --------------------------------------------------------------------------------------


def test_add_prefix_key_writes_it_as_given(keys: Keyring, keystore: Keystore, host: Host) -> None:
    old_umask = os.umask(0o077)
    try:
        stored = keystore.add(keys.ed.armored, prefix="example.com/foo")
    finally:
        os.umask(old_umask)
    path = host.local / "trustedkeys" / "prefix.d" / "example.com" / "foo" / keys.ed.fingerprint
    assert stored.path == path and path.read_bytes() == keys.ed.armored
    assert (stored.fingerprint, stored.scope, stored.source) == (keys.ed.fingerprint, "example.com/foo", "local")
    assert stored.user_ids == ["Ed Signer <ed@example.com>"] and not stored.revoked
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    for folder in (host.local, host.local / "trustedkeys", path.parent.parent, path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_add_root_key_binary(keys: Keyring, keystore: Keystore, host: Host) -> None:
    stored = keystore.add(keys.rsa.binary, root=True)
    assert stored.path == host.local / "trustedkeys" / "root.d" / keys.rsa.fingerprint
    assert stored.path.read_bytes() == keys.rsa.binary
    assert stored.scope == "" and stored.algorithm == "rsa4096"
    assert fingerprints(keystore.list()) == [keys.rsa.fingerprint]


@pytest.mark.parametrize("where", [{}, {"prefix": "a.org", "root": True}, {"prefix": "A.org"}, {"prefix": "a.org/"}])
def test_add_needs_one_valid_scope(keys: Keyring, keystore: Keystore, where: Dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        keystore.add(keys.ed.armored, **where)


def test_add_refuses_what_is_not_one_public_key(keys: Keyring, keystore: Keystore, host: Host) -> None:
    secret = keys.home.gpg("--armor", "--export-secret-keys", keys.ed.fingerprint.upper()).stdout
    signature = keys.home.sign(keys.ed.fingerprint, keys.data)
    for data in (b"not a key", secret, keys.ed.binary + keys.rsa.binary, signature):
        with pytest.raises(TrustError):
            keystore.add(data, root=True)
    assert not (host.local / "trustedkeys" / "root.d").exists()


def test_stored_key_describes_the_key(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.subkey.armored, root=True)
    keystore.add(keys.expired.armored, root=True)
    keystore.add(keys.revoked.armored, root=True)
    listed = {key.fingerprint: key for key in keystore.list()}
    assert listed[keys.subkey.fingerprint].subkey_fingerprints == [keys.subkey.signing_fingerprint]
    assert listed[keys.expired.fingerprint].expires == listed[keys.expired.fingerprint].created + 86400
    assert listed[keys.revoked.fingerprint].revoked
    assert not listed[keys.subkey.fingerprint].revoked and listed[keys.subkey.fingerprint].expires is None


def test_list_merges_system_and_local(keys: Keyring, keystore: Keystore, host: Host) -> None:
    system_key(host.system, keys.ed, "example.com")
    system_key(host.system, keys.rsa)
    keystore.add(keys.ed.binary, prefix="example.com")  # the same relative path: local wins
    keystore.add(keys.other.armored, prefix="example.com/foo/bar")
    listed = [(key.scope, key.fingerprint, key.source) for key in keystore.list()]
    assert listed == [
        ("", keys.rsa.fingerprint, "system"),
        ("example.com", keys.ed.fingerprint, "local"),
        ("example.com/foo/bar", keys.other.fingerprint, "local"),
    ]


def test_remove_local_key_deletes_it_from_its_scope(keys: Keyring, keystore: Keystore) -> None:
    stored = keystore.add(keys.ed.armored, prefix="example.com")
    assert keystore.remove(keys.ed.fingerprint.upper(), prefix="example.com") == [stored.path]
    assert not stored.path.exists()
    assert keystore.list() == []
    with pytest.raises(NotFoundError):
        keystore.remove(keys.ed.fingerprint, prefix="example.com")
    keystore.add(keys.ed.armored, prefix="example.com")
    with pytest.raises(NotFoundError):  # a key is removed from the scope it is trusted in
        keystore.remove(keys.ed.fingerprint, root=True)
    with pytest.raises(UsageError):
        keystore.remove("abc", prefix="example.com")


def test_remove_system_key_masks_it(keys: Keyring, keystore: Keystore, host: Host) -> None:
    vendor = system_key(host.system, keys.rsa)
    assert fingerprints(keystore.keys_for("example.com/app")) == [keys.rsa.fingerprint]
    mask = host.local / "trustedkeys" / "root.d" / keys.rsa.fingerprint
    assert keystore.remove(keys.rsa.fingerprint, root=True) == [mask]
    assert mask.read_bytes() == b"" and vendor.read_bytes() == keys.rsa.armored
    assert keystore.list() == [] and keystore.keys_for("example.com/app") == []
    with pytest.raises(NotFoundError):
        keystore.remove(keys.rsa.fingerprint, root=True)


def test_remove_key_in_both_leaves_a_mask(keys: Keyring, keystore: Keystore, host: Host) -> None:
    system_key(host.system, keys.ed, "example.com")
    stored = keystore.add(keys.ed.armored, prefix="example.com")
    assert keystore.remove(keys.ed.fingerprint, prefix="example.com") == [stored.path]
    assert stored.path.read_bytes() == b""
    assert keystore.list() == []


@pytest.mark.parametrize(
    ("prefix", "name", "covers"),
    [
        ("example.com/foo", "example.com/foo", True),
        ("example.com/foo", "example.com/foo/bar", True),
        ("example.com/foo", "example.com/foo/bar/baz", True),
        ("example.com/foo", "example.com/foobar", False),
        ("example.com/foo", "example.com/fo", False),
        ("example.com/foo", "example.com", False),
        ("example.com", "example.com.evil.org/app", False),
        ("example.com", "example.com-evil/app", False),
        ("", "anything.org/app", True),
    ],
)
def test_prefix_covers(prefix: str, name: str, covers: bool) -> None:
    assert prefix_covers(prefix, name) is covers


def test_keys_for_matches_whole_components(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.rsa.armored, root=True)
    keystore.add(keys.ed.armored, prefix="example.com/foo")
    keystore.add(keys.other.armored, prefix="example.com/foo/bar")
    root, ed, other = keys.rsa.fingerprint, keys.ed.fingerprint, keys.other.fingerprint
    assert fingerprints(keystore.keys_for("example.com/foo")) == [root, ed]
    assert fingerprints(keystore.keys_for("example.com/foo/bar")) == [root, ed, other]
    assert fingerprints(keystore.keys_for("example.com/foo/barn")) == [root, ed]
    assert fingerprints(keystore.keys_for("example.com/foobar")) == [root]
    assert fingerprints(keystore.keys_for("example.com")) == [root]
    with pytest.raises(UsageError):
        keystore.keys_for("Not A Name")


def test_key_file_named_by_another_fingerprint(keys: Keyring, keystore: Keystore, host: Host) -> None:
    folder = host.local / "trustedkeys" / "prefix.d" / "example.com"
    folder.mkdir(parents=True)
    (folder / keys.rsa.fingerprint).write_bytes(keys.ed.armored)
    for call in (keystore.list, lambda: keystore.keys_for("example.com/app")):
        with pytest.raises(TrustError) as excinfo:
            call()
        context = excinfo.value.context
        assert context["path"] == str(folder / keys.rsa.fingerprint)
        assert (context["expected"], context["actual"]) == (keys.rsa.fingerprint, keys.ed.fingerprint)
    assert fingerprints(keystore.keys_for("other.org/app")) == []  # other names do not read that folder


@pytest.mark.parametrize("content", [b"garbage", b"\x99\x00\x01x"], ids=["garbage", "broken-packet"])
def test_invalid_key_file_names_the_file(keystore: Keystore, host: Host, content: bytes) -> None:
    folder = host.system / "trustedkeys" / "root.d"
    folder.mkdir(parents=True)
    (folder / ("ab" * 20)).write_bytes(content)
    with pytest.raises(TrustError) as excinfo:
        keystore.list()
    assert excinfo.value.context["path"] == str(folder / ("ab" * 20))


def test_key_file_outside_a_prefix_folder(keys: Keyring, keystore: Keystore, host: Host) -> None:
    folder = host.local / "trustedkeys" / "prefix.d"
    folder.mkdir(parents=True)
    (folder / keys.ed.fingerprint).write_bytes(keys.ed.armored)
    with pytest.raises(TrustError):
        keystore.list()


# --- policy ----------------------------------------------------------------------------------------


def test_no_policy_file_is_rkt_behaviour(host: Host) -> None:
    policy = host.load()
    assert policy.version == 0 and policy.source is None
    assert policy.requirement_for("example.com/app") == ("", Requirement("signedBy", keys=None))
    assert not host.state.exists()


def test_local_policy_wins(host: Host) -> None:
    write_policy(host.system, {"version": 1, "default": {"type": "insecureAcceptAnything"}})
    assert host.load().version == 1
    write_policy(host.local, {"version": 2})
    policy = host.load()
    assert (policy.version, policy.source, policy.default.type) == (2, host.local / "policy.json", "reject")


def test_most_specific_scope_wins() -> None:
    policy = policy_of(
        {
            "version": 1,
            "scopes": {
                "example.com": {"type": "insecureAcceptAnything"},
                "example.com/foo": {"type": "signedBy", "keys": ["AB" * 20]},
                "example.com/foo/bar/baz": {"type": "reject"},
            },
        }
    )
    cases = {
        "example.com/foo": ("example.com/foo", "signedBy"),
        "example.com/foo/bar": ("example.com/foo", "signedBy"),
        "example.com/foo/bar/baz/qux": ("example.com/foo/bar/baz", "reject"),
        "example.com/foobar": ("example.com", "insecureAcceptAnything"),
        "example.com": ("example.com", "insecureAcceptAnything"),
        "example.org/app": ("", "reject"),
    }
    for name, (scope, kind) in cases.items():
        found_scope, requirement = policy.requirement_for(name)
        assert (found_scope, requirement.type) == (scope, kind), name
    assert policy.requirement_for("example.com/foo")[1].keys == frozenset({"ab" * 20})


def test_deny_list_matches_any_given_fingerprint() -> None:
    policy = policy_of({"version": 1, "deny": ["AB" * 20, "cd" * 32]})
    assert policy.denied("ab" * 20)
    assert policy.denied("12" * 20, "AB" * 20)  # e.g. a primary key and its signing subkey
    assert policy.denied("cd" * 32)
    assert policy.denied("ab" * 8)  # a v4 key ID: the end of the fingerprint
    assert not policy.denied("12" * 20, "ab" * 19)
    assert not policy_of({"version": 1}).denied("ab" * 20)


def test_rollback_is_refused(host: Host) -> None:
    write_policy(host.local, {"version": 3})
    assert host.load().version == 3
    assert policy_version_path(host.state).read_text() == "3\n"
    assert host.load().version == 3  # loading the same version again is fine
    write_policy(host.local, {"version": 2})
    with pytest.raises(TrustError) as excinfo:
        host.load()
    assert (excinfo.value.context["loaded"], excinfo.value.context["highest"]) == (2, 3)
    (host.local / "policy.json").unlink()  # no file at all is rkt's policy, version 0: a rollback too
    with pytest.raises(TrustError):
        host.load()
    write_policy(host.system, {"version": 7})
    assert host.load().version == 7
    assert policy_version_path(host.state).read_text() == "7\n"


def test_damaged_version_record_fails_closed(host: Host) -> None:
    write_policy(host.local, {"version": 3})
    policy_version_path(host.state).parent.mkdir(parents=True)
    policy_version_path(host.state).write_text("three\n")
    with pytest.raises(TrustError):
        host.load()


GOOD = "ab" * 20
V1: Dict[str, Any] = {"version": 1}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], ""),
        ({**V1, "scope": {}}, "scope"),
        ({}, "version"),
        ({"version": "3"}, "version"),
        ({"version": True}, "version"),
        ({"version": -1}, "version"),
        ({**V1, "default": "reject"}, "default"),
        ({**V1, "default": {"type": "accept"}}, "default.type"),
        ({**V1, "default": {}}, "default.type"),
        ({**V1, "default": {"type": "reject", "keys": [GOOD]}}, "default.keys"),
        ({**V1, "scopes": []}, "scopes"),
        ({**V1, "scopes": {"Example.com": {"type": "reject"}}}, 'scopes["Example.com"]'),
        ({**V1, "scopes": {"example.com/": {"type": "reject"}}}, 'scopes["example.com/"]'),
        ({**V1, "scopes": {"": {"type": "reject"}}}, 'scopes[""]'),
        ({**V1, "scopes": {"a.org": {"type": "signedBy", "keys": []}}}, 'scopes["a.org"].keys'),
        ({**V1, "scopes": {"a.org": {"type": "signedBy", "keys": GOOD}}}, 'scopes["a.org"].keys'),
        ({**V1, "scopes": {"a.org": {"type": "signedBy", "keys": [GOOD, GOOD[:16]]}}}, 'scopes["a.org"].keys[1]'),
        ({**V1, "scopes": {"a.org": {"type": "signedBy", "key": [GOOD]}}}, 'scopes["a.org"].key'),
        ({**V1, "deny": GOOD}, "deny"),
        ({**V1, "deny": [GOOD, "zz" * 20]}, "deny[1]"),
        ({**V1, "deny": [GOOD + "ab"]}, "deny[0]"),
    ],
)
def test_malformed_policy_names_the_field(host: Host, document: Any, field: str) -> None:
    write_policy(host.local, document)
    with pytest.raises(TrustError) as excinfo:
        host.load()
    assert excinfo.value.context["field"] == field
    assert excinfo.value.context["path"] == str(host.local / "policy.json")


@pytest.mark.parametrize("text", ["", "{", '{"version": 1, "version": 2}', "\xff"], ids=["empty", "cut", "dup", "bin"])
def test_policy_that_is_not_json(host: Host, text: str) -> None:
    host.local.mkdir()
    (host.local / "policy.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(TrustError):
        host.load()


# --- verify_signature ------------------------------------------------------------------------------


def trusted(keystore: Keystore, *test_keys: TestKey, prefix: str = "example.com") -> List[StoredKey]:
    for key in test_keys:
        keystore.add(key.armored, prefix=prefix)
    return keystore.keys_for(prefix)


@pytest.mark.parametrize(("signer", "armor"), [("ed", True), ("rsa", False), ("subkey", True)])
def test_good_signature(keys: Keyring, keystore: Keystore, signer: str, armor: bool) -> None:
    key: TestKey = getattr(keys, signer)  # the subkey key signs with its subkey: the primary is reported
    stored = trusted(keystore, keys.ed, keys.rsa, keys.subkey)
    good = verify_signature(keys.data, keys.home.sign(key.fingerprint, keys.data, armor=armor), stored)
    assert (good.primary_fingerprint, good.signing_fingerprint) == (key.fingerprint, key.signing_fingerprint)
    assert good.key.fingerprint == key.fingerprint and good.key.scope == "example.com"
    assert good.digest_algo not in ("MD5", "SHA1") and good.timestamp > 0


# Each case is named "<expected reason>:<what>".
REJECTIONS = ["unknown-key:other-signer", "bad-signature:tampered", "expired-key:", "revoked-key:"]
REJECTIONS += ["expired-signature:", "weak-digest:sha1", "unsigned:empty", "bad-signature:garbage"]
REJECTIONS += ["bad-signature:key-as-signature", "bad-signature:two-signatures", "bad-signature:signed-message"]


@pytest.mark.parametrize("case", REJECTIONS)
def test_signature_rejections(keys: Keyring, keystore: Keystore, tmp_path: Path, case: str) -> None:
    stored = trusted(keystore, keys.ed, keys.rsa, keys.expired, keys.revoked, keys.old)
    data = keys.data
    by_ed = keys.home.sign(keys.ed.fingerprint, data, armor=False)
    signature = {
        "unknown-key:other-signer": lambda: keys.home.sign(keys.other.fingerprint, data),
        "bad-signature:tampered": lambda: by_ed,
        "expired-key:": lambda: keys.expired_key_sig,
        "revoked-key:": lambda: keys.revoked_key_sig,
        "expired-signature:": lambda: keys.expired_sig,
        "weak-digest:sha1": lambda: keys.sha1_sig,
        "unsigned:empty": lambda: b"",
        "bad-signature:garbage": lambda: b"-----BEGIN PGP SIGNATURE-----\n\nnonsense\n-----END PGP SIGNATURE-----\n",
        "bad-signature:key-as-signature": lambda: keys.ed.binary,
        "bad-signature:two-signatures": lambda: by_ed + by_ed,
        # An inline-signed message carries its own content: it must never pass for a detached signature.
        "bad-signature:signed-message": lambda: (
            keys.home.gpg("-u", keys.ed.fingerprint, "-s", "-o", "-", str(data)).stdout
        ),
    }[case]()
    if case == "bad-signature:tampered":
        data = tmp_path / "tampered.aci"
        data.write_bytes(keys.data.read_bytes() + b"x")
    assert refusal(lambda: verify_signature(data, signature, stored)) == case.split(":")[0]


class FakeGpgv:
    """Stands in for gpgv: answers with the given status lines and exit code."""

    def __init__(self, status: List[str], returncode: int) -> None:
        self.stdout = "".join(f"[GNUPG:] {line}\n" for line in status).encode()
        self.returncode = returncode

    def __call__(self, command: List[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        assert command[command.index("--homedir") + 1].startswith("/")
        assert command[command.index("--keyring") + 1].startswith("/")
        assert command[command.index("--weak-digest") + 1] == "SHA1"
        return subprocess.CompletedProcess(command, self.returncode, self.stdout, b"gpgv: something\n")


@pytest.mark.parametrize(
    ("lines", "returncode", "reason"),
    [
        (["NEWSIG", "GOODSIG K n", "VALIDSIG {f} 2020-01-01 1577836800 0 4 0 22 8 00 {f}"], 0, None),
        (["NEWSIG", "GOODSIG K n", "VALIDSIG {f} 2020-01-01 1577836800 0 4 0 22 8 00 {f}"], 1, "error"),
        (["NEWSIG", "GOODSIG K n"], 0, "error"),
        (["NEWSIG", "VALIDSIG {f} 2020-01-01 1577836800 0 4 0 22 8 00 {f}"], 0, "error"),
        ([], 0, "error"),
        (["NEWSIG", "GOODSIG K n", "VALIDSIG {f} 2020-01-01 1577836800 0 4 0 22 2 00 {f}"], 0, "weak-digest"),
        (["NEWSIG", "EXPKEYSIG K n", "VALIDSIG {f} 2020-01-01 1577836800 0 4 0 22 8 00 {f}"], 0, "expired-key"),
        (["NEWSIG", "REVKEYSIG K n", "VALIDSIG {f} 2020-01-01 1577836800 0 4 0 22 8 00 {f}"], 0, "revoked-key"),
        (["NEWSIG", "GOODSIG K n", "VALIDSIG {o} 2020-01-01 1577836800 0 4 0 22 8 00 {o}"], 0, "error"),
        (["NEWSIG", "GOODSIG K n", "VALIDSIG {f} 2020-01-01 1577836800 0 4 0 22 8 00 {f}", "NEWSIG"], 0, "error"),
        (["NEWSIG", "ERRSIG K 22 8 00 1577836800 4 {f}"], 2, "error"),
        (["NEWSIG", "ERRSIG K 22 8 00 1577836800 9 {f}", "NO_PUBKEY K"], 2, "unknown-key"),
    ],
)
def test_gpgv_status_is_read_strictly(
    keys: Keyring, keystore: Keystore, lines: List[str], returncode: int, reason: Optional[str]
) -> None:
    stored = trusted(keystore, keys.ed)
    fake = FakeGpgv([line.format(f=keys.ed.fingerprint.upper(), o="AB" * 20) for line in lines], returncode)
    signature = keys.home.sign(keys.ed.fingerprint, keys.data)
    if reason is None:
        assert verify_signature(keys.data, signature, stored, runner=fake).primary_fingerprint == keys.ed.fingerprint
        return
    assert refusal(lambda: verify_signature(keys.data, signature, stored, runner=fake)) == reason


# --- check_trust -----------------------------------------------------------------------------------

RKT = RKT_POLICY  # no policy file: signed by a trusted key, for every name


def rkt(keystore: Keystore) -> Dict[str, Any]:
    return {"keystore": keystore, "policy": RKT}


def decide(keys: Keyring, keystore: Keystore, policy: Policy, name: str, signer: Optional[str], **flags: Any) -> Any:
    signature = keys.home.sign(signer, keys.data) if signer else None
    return check_trust(name, keys.data, signature, keystore=keystore, policy=policy, **flags)


def test_signed_by_a_trusted_key(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.ed.armored, prefix="example.com/foo")
    decision = decide(keys, keystore, RKT, "example.com/foo/app", keys.ed.fingerprint)
    assert decision.accepted and decision.how == "signature" and decision.scope == ""
    assert decision.fingerprint == keys.ed.fingerprint and decision.signature is not None


def test_key_for_another_prefix_is_not_trusted(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.ed.armored, prefix="example.com/foo")
    keystore.add(keys.rsa.armored, prefix="example.com/foobar")
    assert refusal(lambda: decide(keys, keystore, RKT, "example.com/foobar/app", keys.ed.fingerprint)) == "unknown-key"
    # No key at all for the name:
    assert refusal(lambda: decide(keys, keystore, RKT, "example.org/app", keys.ed.fingerprint)) == "unknown-key"


def test_unsigned_under_signed_by(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.ed.armored, root=True)
    for signature in (None, b"", b"\n"):
        assert refusal(partial(check_trust, "example.com/app", keys.data, signature, **rkt(keystore))) == "unsigned"


def test_signed_by_listed_keys_only(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.ed.armored, root=True)
    keystore.add(keys.rsa.armored, root=True)
    policy = policy_of({"version": 1, "scopes": {"example.com": {"type": "signedBy", "keys": [keys.rsa.fingerprint]}}})
    assert decide(keys, keystore, policy, "example.com/app", keys.rsa.fingerprint).fingerprint == keys.rsa.fingerprint
    assert refusal(lambda: decide(keys, keystore, policy, "example.com/app", keys.ed.fingerprint)) == "unknown-key"
    listed_but_untrusted = policy_of(
        {"version": 1, "scopes": {"example.com": {"type": "signedBy", "keys": [keys.other.fingerprint]}}}
    )
    call = partial(decide, keys, keystore, listed_but_untrusted, "example.com/app", keys.other.fingerprint)
    assert refusal(call) == "unknown-key"


def test_insecure_policy_scope(keys: Keyring, keystore: Keystore) -> None:
    policy = policy_of({"version": 1, "scopes": {"example.com/dev": {"type": "insecureAcceptAnything"}}})
    decision = decide(keys, keystore, policy, "example.com/dev/app", None)
    assert decision.accepted and decision.how == "insecure-policy" and decision.scope == "example.com/dev"
    assert decision.fingerprint is None
    # example.com/devel is not under example.com/dev: the default applies, reject.
    assert refusal(lambda: decide(keys, keystore, policy, "example.com/devel", keys.ed.fingerprint)) == "policy-reject"


def test_reject_scope_wins_over_signature_and_flag(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.ed.armored, root=True)
    policy = policy_of({"version": 1, "default": {"type": "signedBy"}, "scopes": {"evil.org": {"type": "reject"}}})
    for flags in ({}, {"insecure_image": True}):
        call = partial(decide, keys, keystore, policy, "evil.org/app", keys.ed.fingerprint, **flags)
        assert refusal(call) == "policy-reject"


def test_insecure_flag_skips_verification(keys: Keyring, keystore: Keystore) -> None:
    for signature in (None, b"garbage", keys.home.sign(keys.other.fingerprint, keys.data)):
        decision = check_trust(
            "example.com/app", keys.data, signature, keystore=keystore, policy=RKT, insecure_image=True
        )
        assert (decision.accepted, decision.how, decision.fingerprint) == (True, "insecure-flag", None)


@pytest.mark.parametrize(
    ("requirement", "flags"),
    [("signedBy", {}), ("insecureAcceptAnything", {}), ("signedBy", {"insecure_image": True})],
)
def test_denied_key_is_refused_everywhere(
    keys: Keyring, keystore: Keystore, requirement: str, flags: Dict[str, Any]
) -> None:
    keystore.add(keys.ed.armored, root=True)
    keystore.add(keys.subkey.armored, root=True)
    # The subkey key is denied by its primary fingerprint, the other two by the key that signs.
    deny = [keys.ed.fingerprint, keys.subkey.fingerprint, keys.other.fingerprint]
    policy = policy_of({"version": 1, "default": {"type": requirement}, "deny": deny})
    for signer in (keys.ed.fingerprint, keys.subkey.fingerprint, keys.other.fingerprint):
        assert refusal(partial(decide, keys, keystore, policy, "example.com/app", signer, **flags)) == "denied-key"
    if requirement == "insecureAcceptAnything" or flags:
        assert decide(keys, keystore, policy, "example.com/app", None, **flags).accepted  # unsigned is fine there


def test_denied_signing_subkey(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.subkey.armored, root=True)
    policy = policy_of({"version": 1, "default": {"type": "signedBy"}, "deny": [keys.subkey.signing_fingerprint]})
    assert refusal(lambda: decide(keys, keystore, policy, "example.com/app", keys.subkey.fingerprint)) == "denied-key"


def test_check_trust_passes_on_verification_failures(keys: Keyring, keystore: Keystore) -> None:
    keystore.add(keys.expired.armored, prefix="example.com")
    keystore.add(keys.revoked.armored, prefix="example.com")
    for signature, reason in ((keys.expired_key_sig, "expired-key"), (keys.revoked_key_sig, "revoked-key")):
        assert refusal(partial(check_trust, "example.com/app", keys.data, signature, **rkt(keystore))) == reason
