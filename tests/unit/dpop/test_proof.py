"""certbound.dpop.proof: every RFC 9449 §4.3 check, each refusal with its reason and description
(the table in tests/dpop_kit.py, shared with the token endpoint's and the resource's tests), and
each accepted spelling as the twin."""

from __future__ import annotations

import re
import time

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from certbound.dpop import DPOP_SIGNING_ALGS, DPoPKey, DPoPProofError, ProofChecker, access_token_hash
from certbound.jose import b64url_decode, b64url_encode
from certbound.reasons import ProofReason
from tests.dpop_kit import Case, ProofKey, accepted_variants, refusals

URL = "https://as.example:8443/token"
TOKEN = "access-token.value_1"
KEY = ProofKey()


def check(
    headers: list[str], *, url: str = URL, method: str = "POST", access_token: str | None = None
) -> str:
    """The proven key's thumbprint."""
    checker = ProofChecker(leeway=60)
    proof = checker.verify(checker.parse(headers), method=method, url=URL, access_token=access_token)
    return proof.jkt


def case_named(name: str, method: str, access_token: str | None = None) -> Case:
    """The refusal `name` of the table, its proofs made now (they carry the time)."""
    return next(case for case in refusals(KEY, method, URL, access_token=access_token) if case.name == name)


@pytest.mark.parametrize("name", [case.name for case in refusals(KEY, "POST", URL)])
def test_a_proof_is_refused_with_its_reason(name: str) -> None:
    case = case_named(name, "POST")
    with pytest.raises(DPoPProofError, match=re.escape(case.says)) as refused:
        check(case.headers)
    assert refused.value.reason is case.reason


@pytest.mark.parametrize("name", [case.name for case in refusals(KEY, "GET", URL, access_token=TOKEN)])
def test_a_resource_proof_is_refused_with_its_reason(name: str) -> None:
    case = case_named(name, "GET", TOKEN)
    with pytest.raises(DPoPProofError, match=re.escape(case.says)) as refused:
        check(case.headers, method="GET", access_token=TOKEN)
    assert refused.value.reason is case.reason


@pytest.mark.parametrize("name", sorted(accepted_variants(KEY, "POST", URL)))
def test_the_twins_are_accepted(name: str) -> None:
    proof = accepted_variants(KEY, "POST", URL)[name]()
    assert check([proof]) == DPoPKey(KEY.key).jkt


def test_a_resource_proof_with_its_ath_is_accepted() -> None:
    assert check([KEY.proof("GET", URL, access_token=TOKEN)], method="GET", access_token=TOKEN)


def test_no_header_is_missing() -> None:
    with pytest.raises(DPoPProofError, match="no DPoP header") as refused:
        check([])
    assert refused.value.reason is ProofReason.MISSING


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ECKey.generate_key("P-256"), "ES256"),
        (ECKey.generate_key("P-384"), "ES384"),
        (ECKey.generate_key("P-521"), "ES512"),
        (OKPKey.generate_key("Ed25519"), "EdDSA"),
        (RSAKey.generate_key(2048), "RS256"),
        (RSAKey.generate_key(2048), "PS256"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_listed_algorithm_verifies_and_binds_the_same_thumbprint(key, alg: str) -> None:
    signer = DPoPKey(key, alg=alg)
    assert alg in DPOP_SIGNING_ALGS
    assert check([signer.proof("POST", URL)]) == signer.jkt == key.thumbprint()


def test_an_algorithm_left_out_by_the_checker_is_refused() -> None:
    checker = ProofChecker(algs=["PS256"])
    with pytest.raises(DPoPProofError, match="alg 'ES256' is not accepted"):
        checker.parse([DPoPKey().proof("POST", URL)])
    with pytest.raises(ValueError, match="must be among"):
        ProofChecker(algs=["HS256"])


def test_iat_is_checked_against_the_injected_clock() -> None:
    now = time.time()
    proof = KEY.proof("POST", URL, iat=int(now))
    parsed = ProofChecker(leeway=5, clock=lambda: now + 4).parse([proof])
    verified = ProofChecker(leeway=5, clock=lambda: now + 4).verify(parsed, method="POST", url=URL)
    # The jti is remembered as long as the proof could pass the iat check.
    assert verified.remember_until == int(now) + 5 + 1
    with pytest.raises(DPoPProofError, match="too old"):
        ProofChecker(leeway=5, clock=lambda: now + 6).verify(parsed, method="POST", url=URL)


def test_the_nonce_claim_is_read_and_must_be_a_string() -> None:
    checker = ProofChecker()
    proof = checker.verify(checker.parse([KEY.proof("POST", URL, nonce="n-1")]), method="POST", url=URL)
    assert proof.nonce == "n-1"
    with pytest.raises(DPoPProofError, match="nonce is not a string"):
        checker.verify(checker.parse([KEY.proof("POST", URL, nonce=5)]), method="POST", url=URL)


def test_duplicate_members_are_refused() -> None:
    header, payload, signature = KEY.proof("POST", URL).split(".")
    doubled = b64url_decode(header)[:-1] + b',"typ":"dpop+jwt"}'
    with pytest.raises(DPoPProofError, match="not base64url JSON"):
        check([f"{b64url_encode(doubled)}.{payload}.{signature}"])


def test_ath_is_the_base64url_sha256_of_the_token() -> None:
    # RFC 9449 §4.2 / appendix: the hash of the ASCII encoding of the access token.
    assert access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == (
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


def test_a_clients_header_is_read_once_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("certbound.dpop.proof._CACHED_HEADERS", 2)
    checker = ProofChecker()
    first, again = checker.parse([KEY.proof("POST", URL)]), checker.parse([KEY.proof("POST", URL)])
    assert first.key is again.key  # the same header: the key imported once
    assert first.claims["jti"] != again.claims["jti"]
    for _ in range(3):
        checker.parse([DPoPKey().proof("POST", URL)])
    assert checker.parse([KEY.proof("POST", URL)]).key is not first.key  # evicted, imported again
    # A cached header still needs its own valid signature on every proof.
    forged = KEY.proof("POST", URL, signer=ECKey.generate_key("P-256"))
    with pytest.raises(DPoPProofError, match="signature is invalid"):
        checker.verify(checker.parse([forged]), method="POST", url=URL)
