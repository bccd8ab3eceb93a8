"""certbound.dpop.nonces: server nonces any node sharing the key accepts, for 5 minutes (RFC 9449
§8, SPEC §12), with an injected clock."""

from __future__ import annotations

import pytest

from certbound.dpop import NonceCheck, NonceIssuer
from certbound.dpop.nonces import LIFETIME
from certbound.jose import b64url_decode, b64url_encode

KEY = bytes(range(32))
NOW = 1_800_000_000.0


def issuer(now: float = NOW, key: bytes = KEY) -> NonceIssuer:
    return NonceIssuer(key, skew=60, clock=lambda: now)


def test_a_nonce_is_accepted_by_another_node_with_the_same_key_for_its_lifetime() -> None:
    nonce = issuer().issue()
    for later in (0, 1, LIFETIME - 1, LIFETIME):
        assert issuer(NOW + later).check(nonce) is NonceCheck.VALID, later


def test_an_old_nonce_is_stale() -> None:
    assert issuer(NOW + LIFETIME + 1).check(issuer().issue()) is NonceCheck.STALE


def test_a_nonce_from_a_node_whose_clock_is_ahead_is_accepted_within_the_skew() -> None:
    ahead = issuer(NOW + 30).issue()
    assert issuer().check(ahead) is NonceCheck.VALID
    assert issuer().check(issuer(NOW + 61).issue()) is NonceCheck.STALE


@pytest.mark.parametrize(
    "forged",
    [
        issuer(key=bytes(32)).issue(),  # another server's key
        "",
        "short",
        "!" * 32,
        "A" * 32,
        "A" * 33,
    ],
)
def test_a_nonce_this_server_did_not_issue_is_forged(forged: str) -> None:
    assert issuer().check(forged) is NonceCheck.FORGED


def test_changing_the_time_of_a_nonce_breaks_its_mac() -> None:
    raw = bytearray(b64url_decode(issuer().issue()))
    raw[7] ^= 1  # one second later
    assert issuer().check(b64url_encode(bytes(raw))) is NonceCheck.FORGED


def test_nonces_differ_by_second() -> None:
    assert issuer().issue() == issuer().issue()
    assert issuer().issue() != issuer(NOW + 1).issue()
