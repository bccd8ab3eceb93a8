"""Property: whatever arrives as client_assertion, the validator returns a VerifiedAssertion for
this client or raises InvalidClientError, nothing else (no crash, no other exception)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import Key, OctKey

from certbound.clientauth.assertion import ASYMMETRIC_ALGS, HMAC_ALGS, AssertionValidator, VerifiedAssertion
from certbound.config import Settings
from certbound.errors import InvalidClientError
from certbound.jose import b64url_encode
from certbound.models import Client
from tests.assertion_kit import compact, generate_key, hmac_compact, sign

NOW = 1_800_000_000.0
ISSUER = "https://as.example"
CLIENT_ID = "client-1"
SECRET = b"a-shared-secret-of-more-than-32-bytes!!"
_VALIDATOR = AssertionValidator(Settings(issuer=ISSUER), clock=lambda: NOW)
_HMAC_CLIENT = Client(CLIENT_ID, {"token_endpoint_auth_method": "client_secret_jwt"}, 0)
_KEY_CLIENT = Client(CLIENT_ID, {"token_endpoint_auth_method": "private_key_jwt"}, 0)
_ES_KEY = generate_key("ES256", kid="k1")
_ES_PUBLIC: list[Key] = [type(_ES_KEY).import_key(_ES_KEY.as_dict(private=False))]
_HMAC_KEYS: list[Key] = [OctKey.import_key(SECRET)]

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_near_now = st.one_of(
    st.integers(min_value=int(NOW) - 1000, max_value=int(NOW) + 1000),
    st.floats(min_value=NOW - 1000, max_value=NOW + 1000),
)
_VALID_CLAIMS: dict[str, Any] = {
    "iss": CLIENT_ID,
    "sub": CLIENT_ID,
    "aud": ISSUER,
    "exp": NOW + 60,
    "nbf": NOW - 5,
    "iat": NOW - 5,
    "jti": "jti-1",
}
_claim_values: dict[str, st.SearchStrategy[Any]] = {
    "iss": st.sampled_from([CLIENT_ID, "other"]) | _json,
    "sub": st.sampled_from([CLIENT_ID, "other"]) | _json,
    "aud": st.sampled_from([ISSUER, [ISSUER], [ISSUER, ISSUER], ISSUER + "/token"]) | _json,
    "exp": _near_now | _json,
    "nbf": _near_now | _json,
    "iat": _near_now | _json,
    "jti": st.text(max_size=300) | _json,
}


@st.composite
def _claims(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly-valid claims: each one kept (likely), dropped or replaced by anything, so that
    every check is reached with odd values, not only the first one."""
    claims: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), _json, max_size=3))
    for name, valid in _VALID_CLAIMS.items():
        choice = draw(st.sampled_from(["keep", "keep", "keep", "drop", "replace"]))
        if choice == "keep":
            claims[name] = valid
        elif choice == "replace":
            claims[name] = draw(_claim_values[name])
        else:
            claims.pop(name, None)
    return claims


_headers = st.fixed_dictionaries(
    {},
    optional={
        "typ": st.sampled_from(["JWT", "client-authentication+jwt", "at+jwt"]) | _json,
        "kid": st.sampled_from(["k1", "k2"]) | _json,
        "crit": _json,
        "cty": _json,
    },
)


def _outcome(token: str, client: Client, keys: list[Key], family: tuple[str, ...]) -> None:
    result: VerifiedAssertion | InvalidClientError
    try:
        result = _VALIDATOR.validate(token, client, keys, family=family)
    except InvalidClientError as exc:
        result = exc
    if isinstance(result, InvalidClientError):
        assert result.description  # a refusal always says why
    else:
        assert isinstance(result, VerifiedAssertion)
        assert result.client is client


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text(token: str) -> None:
    _outcome(token, _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS)
    _outcome(token, _KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), st.binary(max_size=100))
def test_arbitrary_bytes_in_each_segment(header: bytes, payload: bytes, signature: bytes) -> None:
    token = ".".join(b64url_encode(part) for part in (header, payload, signature))
    _outcome(token, _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS)
    _outcome(token, _KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS)


@settings(max_examples=300, deadline=None)
@given(_json, _json, st.binary(max_size=80))
def test_arbitrary_json_header_and_claims(header: Any, claims: Any, signature: bytes) -> None:
    token = compact(header, claims, signature)
    _outcome(token, _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS)
    _outcome(token, _KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS)


@settings(max_examples=400, deadline=None)
@given(_claims(), _headers, st.sampled_from(["HS256", "HS512", "none", "RS256", "", "hs256"]))
def test_arbitrary_claims_correctly_mac_ed(claims: dict[str, Any], header: dict[str, Any], alg: str) -> None:
    _outcome(hmac_compact(SECRET, "HS256", claims, **header), _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS)
    _outcome(compact({**header, "alg": alg}, claims, b"\x00" * 32), _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS)


@settings(max_examples=200, deadline=None)
@given(_claims(), _headers)
def test_arbitrary_claims_correctly_signed(claims: dict[str, Any], header: dict[str, Any]) -> None:
    _outcome(sign(_ES_KEY, "ES256", claims, **header), _KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS)


def test_the_claim_strategy_can_produce_a_valid_assertion() -> None:
    """Guard for the properties above: a valid assertion passes, so they explore both outcomes."""
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "exp": NOW + 60, "jti": "j"}
    result = _VALIDATOR.validate(
        hmac_compact(SECRET, "HS256", claims), _HMAC_CLIENT, _HMAC_KEYS, family=HMAC_ALGS
    )
    assert result.jti == "j"
