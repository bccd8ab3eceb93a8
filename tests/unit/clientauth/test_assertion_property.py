"""Properties of the assertion validator over untrusted input: whatever arrives as client_assertion,
the outcome is the one the rules predict, a VerifiedAssertion for this client or InvalidClientError
with the description of the first rule broken, never anything else.

`_expected` is an oracle written from RFC 7523 / rfc7523bis and the validator's documented order
(parse, alg, header, key and signature, claims), independently of the validator's code: each
property compares the exact outcome with it, so a mutant that skips or reorders a check fails."""

from __future__ import annotations

import math
from collections.abc import Mapping
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
SKEW, MAX_LIFETIME, MAX_JTI = 60, 300, 256
_VALIDATOR = AssertionValidator(Settings(issuer=ISSUER), clock=lambda: NOW)
_HMAC_CLIENT = Client(CLIENT_ID, {"token_endpoint_auth_method": "client_secret_jwt"}, 0)
_KEY_CLIENT = Client(CLIENT_ID, {"token_endpoint_auth_method": "private_key_jwt"}, 0)
_ES_KEY = generate_key("ES256", kid="k1")
_ES_PUBLIC: list[Key] = [type(_ES_KEY).import_key(_ES_KEY.as_dict(private=False))]
_HMAC_KEYS: list[Key] = [OctKey.import_key(SECRET)]

#: What parse_assertion says about input that is not a well-formed compact JWS with an alg.
PARSE_REFUSALS = {
    "client_assertion is not a compact JWS (three base64url segments)",
    "client_assertion header is not a base64url JSON object",
    "client_assertion header is not a JSON object",
    "client_assertion claims is not a base64url JSON object",
    "client_assertion claims is not a JSON object",
    "client_assertion signature is not base64url",
    "client_assertion header has no alg",
}

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
    # Each side of every bound: skew, and skew plus the maximum lifetime.
    st.sampled_from(
        [NOW + sign * (bound + step) for sign in (-1, 1) for bound in (60, 360) for step in (-1, 0, 1)]
    ),
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
        "typ": st.sampled_from(["JWT", "client-authentication+jwt", "application/JWT", "at+jwt"]) | _json,
        "kid": st.sampled_from(["k1", "k2"]) | _json,
        "crit": _json,
        "cty": _json,
    },
)


# --- the oracle -------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    """JSON has no Infinity: the strict parser refuses a document that holds one."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(map(_finite, value))
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    return True


def _numeric(claims: Mapping[str, Any], name: str) -> tuple[float | None, str | None]:
    value = claims.get(name)
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"client_assertion {name} is not a NumericDate"
    return value, None


def _expected_claims(claims: Mapping[str, Any]) -> str | None:
    if claims.get("iss") != CLIENT_ID:
        return "client_assertion iss must be the client_id"
    if claims.get("sub") != CLIENT_ID:
        return "client_assertion sub must be the client_id"
    aud = claims.get("aud")
    if isinstance(aud, list):
        if len(aud) != 1:
            return "client_assertion aud must hold exactly one value, the issuer"
        aud = aud[0]
    if aud != ISSUER:
        return (
            f"client_assertion aud must be {ISSUER}, the issuer (a server run with "
            "--assertion-audience legacy also accepts the token endpoint URL)"
        )
    exp, problem = _numeric(claims, "exp")
    if problem is not None:
        return problem
    if exp is None:
        return "client_assertion has no exp"
    if exp + SKEW <= NOW:
        return "client_assertion has expired"
    if exp > NOW + MAX_LIFETIME + SKEW:
        return (
            f"client_assertion exp is more than {MAX_LIFETIME} seconds ahead "
            "(too long-lived: the server's --assertion-max-lifetime)"
        )
    for name in ("nbf", "iat"):
        value, problem = _numeric(claims, name)
        if problem is not None:
            return problem
        if value is not None and value > NOW + SKEW:
            return f"client_assertion {name} is in the future"
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        return "client_assertion has no jti"
    if len(jti) > MAX_JTI:
        return f"client_assertion jti is longer than {MAX_JTI} characters"
    return None


def _expected_header(header: Mapping[str, Any]) -> str | None:
    typ = header.get("typ")
    accepted = ("jwt", "client-authentication+jwt")
    if typ is not None and (
        not isinstance(typ, str) or typ.lower().removeprefix("application/") not in accepted
    ):
        return (
            f"client_assertion typ {typ!r} is not a client authentication JWT "
            "(expected client-authentication+jwt)"
        )
    if "kid" in header and not isinstance(header["kid"], str):
        return "client_assertion kid is not a string"
    if "crit" in header:
        return "client_assertion header has crit extensions this server does not support"
    return None


def _expected(
    header: Any, claims: Any, keys: list[Key], family: tuple[str, ...], *, signed: bool
) -> str | None:
    """The description the validator must answer with, or None for acceptance. `signed`: the
    signature is right for the key the header names (else it is junk)."""
    if not isinstance(header, dict) or not _finite(header):
        return "client_assertion header is not a JSON object" if _finite(header) else PARSE_ERROR_HEADER
    if not isinstance(claims, dict) or not _finite(claims):
        return "client_assertion claims is not a JSON object" if _finite(claims) else PARSE_ERROR_CLAIMS
    alg = header.get("alg")
    if not isinstance(alg, str):
        return "client_assertion header has no alg"
    if alg.lower() == "none":
        return "client_assertion is unsigned (alg none is never accepted)"
    problem = _expected_header(header)  # the request's own shape: checked while parsing
    if problem is not None:
        return problem
    if alg not in family:
        method = "client_secret_jwt" if family == HMAC_ALGS else "private_key_jwt"
        return f"client_assertion alg {alg} is not allowed for {method} (allowed: {', '.join(family)})"
    kid = header.get("kid")
    named = [key for key in keys if kid is None or key.kid == kid]
    if not named:
        return f"client_assertion kid {kid!r} matches none of the client's keys"
    fitting = [key for key in named if alg in HMAC_ALGS or (alg == "ES256" and key.key_type == "EC")]
    if not fitting:
        return f"none of the client's keys can verify alg {alg}"
    if not signed:
        return "client_assertion signature is invalid"
    return _expected_claims(claims)


PARSE_ERROR_HEADER = "client_assertion header is not a base64url JSON object"
PARSE_ERROR_CLAIMS = "client_assertion claims is not a base64url JSON object"


def _outcome(token: str, client: Client, keys: list[Key], family: tuple[str, ...]) -> str | VerifiedAssertion:
    try:
        return _VALIDATOR.validate(token, client, keys, family=family)
    except InvalidClientError as exc:
        return exc.description


def _check(
    token: str,
    header: Any,
    claims: Any,
    client: Client,
    keys: list[Key],
    family: tuple[str, ...],
    *,
    signed: bool,
) -> None:
    expected = _expected(header, claims, keys, family, signed=signed)
    outcome = _outcome(token, client, keys, family)
    if expected is None:
        assert isinstance(outcome, VerifiedAssertion), outcome
        assert outcome.client is client
        assert outcome.jti == claims["jti"]
        assert outcome.jti_expires_at == math.ceil(claims["exp"] + SKEW)
    else:
        assert outcome == expected


# --- the properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_is_refused_as_malformed(token: str) -> None:
    for client, keys, family in (
        (_HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS),
        (_KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS),
    ):
        assert _outcome(token, client, keys, family) in PARSE_REFUSALS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), st.binary(max_size=100))
def test_arbitrary_bytes_in_each_segment_are_refused_as_malformed(
    header: bytes, payload: bytes, signature: bytes
) -> None:
    token = ".".join(b64url_encode(part) for part in (header, payload, signature))
    for client, keys, family in (
        (_HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS),
        (_KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS),
    ):
        assert _outcome(token, client, keys, family) in PARSE_REFUSALS


@settings(max_examples=300, deadline=None)
@given(
    _json
    | st.fixed_dictionaries(
        {"alg": st.sampled_from(["HS256", "ES256", "ES384", "none"])}, optional={"kid": _json}
    ),
    _json | _claims(),
    st.binary(max_size=80),
)
def test_arbitrary_json_header_and_claims_with_a_junk_signature(
    header: Any, claims: Any, signature: bytes
) -> None:
    token = compact(header, claims, signature)
    _check(token, header, claims, _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS, signed=False)
    _check(token, header, claims, _KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS, signed=False)


@settings(max_examples=250, deadline=None)
@given(_claims(), _headers, st.sampled_from(["HS256", "HS512", "none", "RS256", "", "hs256"]))
def test_arbitrary_claims_correctly_mac_ed(claims: dict[str, Any], header: dict[str, Any], alg: str) -> None:
    mac_ed = hmac_compact(SECRET, "HS256", claims, **header)
    _check(mac_ed, {"alg": "HS256", **header}, claims, _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS, signed=True)
    junk = {**header, "alg": alg}
    _check(
        compact(junk, claims, b"\x00" * 32), junk, claims, _HMAC_CLIENT, _HMAC_KEYS, HMAC_ALGS, signed=False
    )


@settings(max_examples=200, deadline=None)
@given(_claims(), _headers)
def test_arbitrary_claims_correctly_signed(claims: dict[str, Any], header: dict[str, Any]) -> None:
    token = sign(_ES_KEY, "ES256", claims, **header)
    # sign() puts the key's kid first and drops members given as None. The client has one key, the
    # signer's: whenever the header selects a key, the signature is right for it.
    effective = {
        name: value for name, value in {"alg": "ES256", "kid": "k1", **header}.items() if value is not None
    }
    _check(token, effective, claims, _KEY_CLIENT, _ES_PUBLIC, ASYMMETRIC_ALGS, signed=True)


def test_the_strategies_reach_acceptance_and_every_stage() -> None:
    """Guard for the properties above: the oracle accepts a valid assertion, and the validator
    with it, so the properties explore both outcomes."""
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "exp": NOW + 60, "jti": "j"}
    _check(
        hmac_compact(SECRET, "HS256", claims),
        {"alg": "HS256"},
        claims,
        _HMAC_CLIENT,
        _HMAC_KEYS,
        HMAC_ALGS,
        signed=True,
    )
    _check(
        sign(_ES_KEY, "ES256", claims), {"alg": "ES256", "kid": "k1"}, claims, _KEY_CLIENT, _ES_PUBLIC,
        ASYMMETRIC_ALGS, signed=True,
    )  # fmt: skip
    assert _expected({"alg": "HS256"}, claims, _HMAC_KEYS, HMAC_ALGS, signed=True) is None
