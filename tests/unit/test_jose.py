"""certbound.jose.public_key_from_jwk: the one door for a public key a peer hands us as a JWK (a JWK
Set member, or a JWS header's embedded `jwk` as in DPoP, RFC 9449 §4.2), with properties over
untrusted input: a key within the policy, or JWKError, never anything else."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from certbound.clientauth.assertion import ParsedAssertion, parse_assertion
from certbound.errors import InvalidClientError
from certbound.jose import JWKError, b64url_encode, public_jwk, public_key_from_jwk
from certbound.keypolicy import check_public_key
from certbound.reasons import Reason
from tests.assertion_kit import compact
from tests.unit.pki.builders import huge_exponent_key, name, self_signed, x5c_of

SUBJECT = name((NameOID.COMMON_NAME, "client"))
_VALID: dict[str, dict[str, Any]] = {
    "RSA": RSAKey.generate_key(2048).as_dict(private=False),
    "EC": ECKey.generate_key("P-256").as_dict(private=False),
    "OKP": OKPKey.generate_key("Ed25519").as_dict(private=False),
}
_CERTIFIED = self_signed(SUBJECT)
_CERTIFIED_JWK = {**public_jwk(_CERTIFIED.key.public_key()), "x5c": [x5c_of(_CERTIFIED)]}


@pytest.mark.parametrize("kty", sorted(_VALID))
def test_a_public_jwk_imports_as_itself(kty: str) -> None:
    key = public_key_from_jwk(_VALID[kty])
    assert key.as_dict(private=False) == _VALID[kty]
    assert not key.is_private


def test_a_jwk_with_a_matching_x5c_imports() -> None:
    assert public_key_from_jwk(_CERTIFIED_JWK).get("x5c") == _CERTIFIED_JWK["x5c"]


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("not a jwk", "is not a JSON object"),
        ({**_VALID["EC"], "d": "AAAA"}, "private or symmetric key material \\(d\\)"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "private or symmetric key material \\(k\\)"),
        ({**_VALID["EC"], "kid": ["a"]}, "kid that is not a string"),
        ({"kty": "RSA", "n": "A" * 1368, "e": "AQAB"}, "more than 8192 bits"),
        ({"kty": "RSA", "n": "A" * 500, "e": "A" * 9}, "exponent above 4294967297"),
        ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "does not parse"),
        ({"kty": "nope"}, "does not parse"),
        (public_jwk(huge_exponent_key(2048).public_key()), "exponent above"),
        ({**_CERTIFIED_JWK, "x5c": [x5c_of(self_signed(SUBJECT))]}, "holds another key"),
        ({**_CERTIFIED_JWK, "x5c": []}, "not a non-empty array"),
        ({**_CERTIFIED_JWK, "x5c": ["%%%"]}, "not a base64 DER certificate"),
        ({**_CERTIFIED_JWK, "x5c": [base64.b64encode(b"\x30\x03\x02\x01\x01").decode()]}, "not a base64 DER"),
    ],
)
def test_refusals_say_what_is_wrong(member: object, problem: str) -> None:
    with pytest.raises(JWKError, match=problem):
        public_key_from_jwk(member)


def test_the_exponent_policy_applies_to_what_the_encoding_allowed() -> None:
    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    # 2^32 + 3 is five octets, like the largest allowed exponent: decoded, then refused.
    member = {**public_jwk(rsa.RSAPublicNumbers(2**32 + 3, n).public_key())}
    with pytest.raises(JWKError, match="public exponent 4294967299"):
        public_key_from_jwk(member)


# --- properties over untrusted JWKs ---------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_b64url = st.binary(max_size=80).map(b64url_encode)
_member_values = _json | _b64url | st.sampled_from(["RSA", "EC", "OKP", "oct", "P-256", "Ed25519", "X25519"])


@st.composite
def _mutated_jwk(draw: st.DrawFn) -> dict[str, Any]:
    """A valid public JWK (x5c included) with members dropped, replaced or added."""
    member = dict(draw(st.sampled_from([*_VALID.values(), _CERTIFIED_JWK])))
    for name_ in list(member):
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "drop":
            del member[name_]
        elif action == "replace":
            member[name_] = draw(_member_values)
    extra = draw(
        st.dictionaries(
            st.sampled_from(["kid", "use", "alg", "key_ops", "x5c", "crv", "n", "e"]),
            _member_values,
            max_size=2,
        )
    )
    member.update(extra)
    return member


def _check_outcome(member: object) -> None:
    """A key within the policy whose public form is the member's, or JWKError: nothing else."""
    result: Key | JWKError
    try:
        result = public_key_from_jwk(member)
    except JWKError as exc:
        result = exc
    if isinstance(result, JWKError):
        # Each refusal completes "the key ...": it says what is wrong, in one of these forms.
        assert re.match(r"(is |holds |has |does not parse as a JWK)", str(result)), result
        return
    key = result
    assert isinstance(key, RSAKey | ECKey | OKPKey)
    assert not key.is_private
    check_public_key(key.public_key)
    assert isinstance(member, dict)
    assert key.thumbprint() == type(key).import_key(member).thumbprint()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_any_json_value_as_a_jwk(member: Any) -> None:
    _check_outcome(member)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_jwk())
def test_mutated_jwks(member: dict[str, Any]) -> None:
    _check_outcome(member)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {"typ": st.just("dpop+jwt") | _json, "alg": st.sampled_from(["ES256", "RS256", "EdDSA"]) | _json},
        optional={"jwk": _mutated_jwk() | _json, "kid": _json},
    ),
    st.binary(max_size=64),
)
def test_dpop_style_jws_with_an_embedded_jwk(header: dict[str, Any], signature: bytes) -> None:
    """A compact JWS whose header carries its key: the JWS parses strictly (or InvalidClientError
    naming why), and the embedded key imports within the policy (or JWKError)."""
    token = compact(
        header, {"htm": "POST", "htu": "https://as.example/token", "jti": "j", "iat": 0}, signature
    )
    parsed: ParsedAssertion | InvalidClientError
    try:
        parsed = parse_assertion(token)
    except InvalidClientError as exc:
        parsed = exc
    if not isinstance(header.get("alg"), str):
        assert isinstance(parsed, InvalidClientError)
        assert parsed.description == "client_assertion header has no alg"
    elif header.get("alg", "").lower() == "none":
        assert isinstance(parsed, InvalidClientError)
        assert parsed.reason is Reason.ALG_NONE
    elif header.get("typ") is not None and not (
        isinstance(header["typ"], str)
        and header["typ"].lower().removeprefix("application/") in ("jwt", "client-authentication+jwt")
    ):
        # dpop+jwt (or another JSON value) is not a client-authentication JWT's typ.
        assert isinstance(parsed, InvalidClientError)
        assert parsed.reason is Reason.TYP_NOT_CLIENT_AUTH
    elif "kid" in header and not isinstance(header["kid"], str):
        assert isinstance(parsed, InvalidClientError)
        assert parsed.reason is Reason.ASSERTION_MALFORMED
    else:
        assert isinstance(parsed, ParsedAssertion)
        assert parsed.header == header
    if "jwk" in header:
        _check_outcome(header["jwk"])


def test_the_mutation_strategy_reaches_both_outcomes() -> None:
    """Guard for the properties above: unmutated members import, so both outcomes are explored."""
    outcomes: set[str] = set()
    for member in [*_VALID.values(), _CERTIFIED_JWK, {**_VALID["RSA"], "n": "AA"}]:
        try:
            key: Key = public_key_from_jwk(member)
            outcomes.add(type(key).__name__)
        except JWKError:
            outcomes.add("refused")
    assert outcomes == {"RSAKey", "ECKey", "OKPKey", "refused"}
