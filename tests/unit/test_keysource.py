"""keysource.check_offered_key: revoked and expired keys and unpinned fingerprints are refused."""

from __future__ import annotations

import pytest

from rocket.errors import TrustError, UsageError
from rocket.keysource import check_offered_key
from rocket.openpgp import KeyInfo

FPR = "0123456789abcdef0123456789abcdef01234567"
OTHER = "f" * 40


@pytest.mark.parametrize(
    ("info", "pinned", "reason"),
    [
        (KeyInfo(FPR, revoked=True), None, "revoked-key"),
        (KeyInfo(FPR, expires=999.0), None, "expired-key"),
        (KeyInfo(FPR), [OTHER], "fingerprint-mismatch"),
        (KeyInfo(FPR), [OTHER, OTHER.upper()], "fingerprint-mismatch"),
    ],
)
def test_refused(info: KeyInfo, pinned: object, reason: str) -> None:
    with pytest.raises(TrustError) as caught:
        check_offered_key(info, pinned=pinned, now=1000.0)  # type: ignore[arg-type]
    assert caught.value.context["reason"] == reason


@pytest.mark.parametrize("pinned", [None, [FPR.upper()], [OTHER, FPR]])
def test_accepted(pinned: object) -> None:
    check_offered_key(KeyInfo(FPR, expires=2000.0), pinned=pinned, now=1000.0)  # type: ignore[arg-type]


def test_a_pin_that_is_no_fingerprint() -> None:
    with pytest.raises(UsageError):
        check_offered_key(KeyInfo(FPR), pinned=["ABCD"])
