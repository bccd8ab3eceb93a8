"""AssertionValidator: every RFC 7523 / rfc7523bis rule, each success with its refusal twin."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.errors import SecurityWarning
from joserfc.jwk import Key, OctKey, RSAKey
from joserfc.jws import JWSRegistry

from certbound.clientauth.assertion import (
    ASSERTION_SIGNING_ALGS,
    ASYMMETRIC_ALGS,
    HMAC_ALGS,
    AssertionValidator,
    parse_assertion,
)
from certbound.config import Settings
from certbound.errors import InvalidClientError
from certbound.jose import b64url_encode
from certbound.models import Client
from tests.assertion_kit import compact, generate_key, hmac_compact, sign

NOW = 1_800_000_000.0
ISSUER = "https://as.example"
CLIENT_ID = "client-1"
SECRET = b"a-shared-secret-of-more-than-32-bytes!!"


def _settings(**overrides: Any) -> Settings:
    return Settings(issuer=ISSUER, **overrides)


def _validator(**overrides: Any) -> AssertionValidator:
    return AssertionValidator(_settings(**overrides), clock=lambda: NOW)


def _client(method: str = "private_key_jwt", **metadata: Any) -> Client:
    return Client(CLIENT_ID, {"token_endpoint_auth_method": method, **metadata}, client_id_issued_at=0)


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": ISSUER,
        "iat": NOW,
        "exp": NOW + 120,
        "jti": "jti-1",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[Key]:
    """The keys each asymmetric signature check of the test used, in order."""
    used: list[Key] = []
    for alg in ASYMMETRIC_ALGS:
        model = JWSRegistry.algorithms[alg]

        def spy(signing_input: bytes, signature: bytes, key: Key, _verify: Any = model.verify) -> bool:
            used.append(key)
            return bool(_verify(signing_input, signature, key))

        monkeypatch.setattr(model, "verify", spy)
    return used


@pytest.fixture(scope="module")
def keys() -> Mapping[str, Key]:
    return {alg: generate_key(alg, kid=f"kid-{alg}") for alg in ASYMMETRIC_ALGS}


def _public(key: Key) -> Key:
    return type(key).import_key(key.as_dict(private=False))


def _hs(claims: dict[str, Any], alg: str = "HS256", **header: Any) -> str:
    return hmac_compact(SECRET, alg, claims, **header)


def _validate_hs(token: str, validator: AssertionValidator | None = None) -> Any:
    return (validator or _validator()).validate(
        token, _client("client_secret_jwt"), [OctKey.import_key(SECRET)], family=HMAC_ALGS
    )


def _refused(token: str, match: str, validator: AssertionValidator | None = None) -> None:
    with pytest.raises(InvalidClientError, match=match):
        _validate_hs(token, validator)


# --- signatures and algorithms -----------------------------------------------------------------


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
def test_each_asymmetric_alg_verifies_with_the_public_key(alg: str, keys: Mapping[str, Key]) -> None:
    token = sign(keys[alg], alg, _claims())
    verified = _validator().validate(
        token, _client(), [_public(key) for key in keys.values()], family=ASYMMETRIC_ALGS
    )
    assert verified.client.client_id == CLIENT_ID
    assert verified.jti == "jti-1"
    assert verified.jti_expires_at == int(NOW + 120 + 60)


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
def test_each_asymmetric_alg_refuses_another_clients_key(alg: str) -> None:
    token = sign(generate_key(alg, kid=f"kid-{alg}"), alg, _claims())
    with pytest.raises(InvalidClientError, match="signature is invalid"):
        _validator().validate(
            token, _client(), [_public(generate_key(alg, kid=f"kid-{alg}"))], family=ASYMMETRIC_ALGS
        )


@pytest.mark.parametrize("alg", HMAC_ALGS)
def test_each_hmac_alg_verifies_with_the_secret(alg: str) -> None:
    assert _validate_hs(_hs(_claims(), alg)).jti == "jti-1"


def test_hmac_with_another_secret_is_refused() -> None:
    token = hmac_compact(b"another-secret-another-secret-another", "HS256", _claims())
    _refused(token, "signature is invalid")


def test_tampered_claims_are_refused() -> None:
    header, _, signature = _hs(_claims()).split(".")
    forged = b64url_encode(b'{"iss":"client-1","sub":"client-1","aud":"https://as.example","exp":1}')
    _refused(f"{header}.{forged}.{signature}", "signature is invalid")


def test_alg_none_is_refused_for_both_families(keys: Mapping[str, Key]) -> None:
    unsigned = compact({"alg": "none"}, _claims(), b"")
    _refused(unsigned, "alg none")
    with pytest.raises(InvalidClientError, match="alg none"):
        _validator().validate(unsigned, _client(), [_public(keys["RS256"])], family=ASYMMETRIC_ALGS)
    with pytest.raises(InvalidClientError, match="alg none"):
        _validate_hs(compact({"alg": "NONE"}, _claims(), b""))


def test_hmac_keyed_by_the_public_key_pem_is_refused_for_a_private_key_jwt_client(
    keys: Mapping[str, Key],
) -> None:
    public = _public(keys["RS256"])
    assert isinstance(public, RSAKey)
    pem = public.as_pem(private=False)
    token = hmac_compact(pem, "HS256", _claims(), kid="kid-RS256")
    with pytest.raises(InvalidClientError, match="alg HS256 is not allowed for private_key_jwt"):
        _validator().validate(token, _client(), [public], family=ASYMMETRIC_ALGS)


def test_asymmetric_assertion_for_an_hmac_client_is_refused(keys: Mapping[str, Key]) -> None:
    token = sign(keys["ES256"], "ES256", _claims())
    with pytest.raises(InvalidClientError, match="alg ES256 is not allowed for client_secret_jwt"):
        _validator().validate(token, _client("client_secret_jwt"), [_public(keys["ES256"])], family=HMAC_ALGS)


def test_alg_must_equal_the_registered_signing_alg(keys: Mapping[str, Key]) -> None:
    client = _client(token_endpoint_auth_signing_alg="PS256")
    public = [_public(keys["RS256"]), _public(keys["PS256"])]
    ok = sign(keys["PS256"], "PS256", _claims())
    assert _validator().validate(ok, client, public, family=ASYMMETRIC_ALGS).jti == "jti-1"
    other = sign(keys["RS256"], "RS256", _claims())
    with pytest.raises(InvalidClientError, match="differs from the registered"):
        _validator().validate(other, client, public, family=ASYMMETRIC_ALGS)


def test_key_selection_by_kid(keys: Mapping[str, Key]) -> None:
    public = [_public(key) for key in keys.values()]
    token = sign(keys["ES256"], "ES256", _claims())
    assert _validator().validate(token, _client(), public, family=ASYMMETRIC_ALGS)
    unknown = sign(keys["ES256"], "ES256", _claims(), kid="rotated-away")
    with pytest.raises(InvalidClientError, match="kid 'rotated-away' matches none"):
        _validator().validate(unknown, _client(), public, family=ASYMMETRIC_ALGS)


def test_without_kid_the_only_key_that_can_verify_the_alg_is_used(keys: Mapping[str, Key]) -> None:
    signer = generate_key("ES256")
    # One P-256 key among keys of other types and curves: no kid needed.
    public = [_public(keys["RS256"]), _public(keys["ES384"]), _public(keys["EdDSA"]), _public(signer)]
    token = sign(signer, "ES256", _claims())
    assert _validator().validate(token, _client(), public, family=ASYMMETRIC_ALGS)


def test_without_kid_several_keys_that_can_verify_are_refused_unverified(
    keys: Mapping[str, Key], verifications: list[Key]
) -> None:
    signer = generate_key("ES256")
    public = [_public(keys["ES256"]), _public(generate_key("ES256")), _public(signer)]
    token = sign(signer, "ES256", _claims())
    with pytest.raises(InvalidClientError, match=r"3 of the client.s keys can verify alg ES256: .* kid"):
        _validator().validate(token, _client(), public, family=ASYMMETRIC_ALGS)
    assert verifications == []
    # Twin: the same set, the assertion names its key.
    named = sign(signer, "ES256", _claims(), kid="mine")
    mine = type(signer).import_key({**signer.as_dict(private=False), "kid": "mine"})
    public[2] = mine
    assert _validator().validate(named, _client(), public, family=ASYMMETRIC_ALGS)
    assert verifications == [mine]


def test_a_kid_selects_one_key_and_only_that_key_is_tried(verifications: list[Key]) -> None:
    signers = [generate_key("RS256", kid=f"k{index}") for index in range(4)]
    public = [_public(key) for key in signers]
    good = sign(signers[2], "RS256", _claims())
    assert _validator().validate(good, _client(), public, family=ASYMMETRIC_ALGS)
    assert verifications == [public[2]]
    # Signed by key 1 but naming key 2: one verification, with key 2, and a refusal.
    forged = sign(signers[1], "RS256", _claims(), kid="k2")
    with pytest.raises(InvalidClientError, match="signature is invalid"):
        _validator().validate(forged, _client(), public, family=ASYMMETRIC_ALGS)
    assert verifications == [public[2], public[2]]


def test_keys_of_the_wrong_type_or_curve_or_use_are_not_used() -> None:
    signer = generate_key("ES256")
    as_p384 = _public(generate_key("ES384"))
    encryption_only = type(signer).import_key({**signer.as_dict(private=False), "use": "enc"})
    token = sign(signer, "ES256", _claims())
    with pytest.raises(InvalidClientError, match="none of the client's keys can verify alg ES256"):
        _validator().validate(token, _client(), [as_p384, encryption_only], family=ASYMMETRIC_ALGS)
    signing = type(signer).import_key({**signer.as_dict(private=False), "use": "sig"})
    assert _validator().validate(token, _client(), [signing], family=ASYMMETRIC_ALGS)


@pytest.mark.parametrize(
    ("key_size", "exponent", "match"),
    [(1024, 65537, "RSA key of 1024 bits"), (2048, 2**64 + 1, "RSA key with public exponent of 65 bits")],
)
def test_rsa_keys_outside_the_policy_are_refused_before_verifying(
    key_size: int, exponent: int, match: str, verifications: list[Key]
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    numbers = private.public_key().public_numbers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        signer = RSAKey.import_key(private)
        public = RSAKey.import_key(rsa.RSAPublicNumbers(exponent, numbers.n).public_key())
    token = sign(signer, "RS256", _claims())
    with pytest.raises(InvalidClientError, match=f"key refused: it is an {match}"):
        _validator().validate(token, _client(), [public], family=ASYMMETRIC_ALGS)
    assert verifications == []


# --- header -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typ", ["client-authentication+jwt", "application/client-authentication+jwt", "JWT", "jwt"]
)
def test_client_authentication_typ_values_are_accepted(typ: str) -> None:
    assert _validate_hs(_hs(_claims(), typ=typ))


@pytest.mark.parametrize(
    "typ", ["at+jwt", "application/at+jwt", "id_token+jwt", "logout+jwt", "secevent+jwt", 7]
)
def test_typ_of_another_kind_of_token_is_refused(typ: Any) -> None:
    _refused(_hs(_claims(), typ=typ), "not a client authentication JWT")


def test_crit_header_is_refused() -> None:
    _refused(_hs(_claims(), crit=["exp"]), "crit")


def test_non_string_kid_is_refused() -> None:
    _refused(_hs(_claims(), kid=5), "kid is not a string")


# --- audience -----------------------------------------------------------------------------------


@pytest.mark.parametrize("aud", [ISSUER, [ISSUER]])
def test_issuer_as_sole_audience_is_accepted(aud: Any) -> None:
    assert _validate_hs(_hs(_claims(aud=aud)))


@pytest.mark.parametrize(
    "aud",
    [
        "https://other.example",
        ISSUER + "/",
        ISSUER + "/token",
        [ISSUER + "/token"],
        [ISSUER, "https://other.example"],
        [ISSUER, ISSUER],
        [],
        None,
        7,
    ],
)
def test_other_audiences_are_refused_in_strict_mode(aud: Any) -> None:
    _refused(_hs(_claims(aud=aud)), "aud must")


@pytest.mark.parametrize(
    "aud", [ISSUER, ISSUER + "/token", [ISSUER + "/token"], "https://as.example:8444/token"]
)
def test_legacy_mode_also_accepts_the_token_endpoint_and_its_mtls_alias(aud: Any) -> None:
    assert _validate_hs(_hs(_claims(aud=aud)), _validator(assertion_audience="legacy", mtls_port=8444))


@pytest.mark.parametrize(
    "aud",
    [
        [ISSUER, ISSUER + "/token"],
        [ISSUER + "/token", "https://other.example"],
        "https://as.example:8444/token",
        "https://other.example/token",
    ],
)
def test_legacy_mode_still_refuses_several_values_and_unknown_endpoints(aud: Any) -> None:
    _refused(_hs(_claims(aud=aud)), "aud must", _validator(assertion_audience="legacy"))


def test_the_audience_refusal_names_the_flag_that_accepts_the_token_endpoint() -> None:
    """Authlib's default aud is the token endpoint URL: the description says how a server accepts it."""
    _refused(_hs(_claims(aud=ISSUER + "/token")), "the issuer .*--assertion-audience legacy")


def test_in_legacy_mode_the_audience_refusal_lists_what_is_accepted() -> None:
    with pytest.raises(InvalidClientError) as refused:
        _validate_hs(_hs(_claims(aud="https://other.example")), _validator(assertion_audience="legacy"))
    assert refused.value.description == f"client_assertion aud must be {ISSUER} or {ISSUER}/token"


# --- time ---------------------------------------------------------------------------------------


def test_missing_exp_is_refused() -> None:
    _refused(_hs(_claims(exp=None)), "has no exp")


@pytest.mark.parametrize("exp", ["1800000100", True, {"t": 1}])
def test_exp_must_be_a_number(exp: Any) -> None:
    _refused(_hs(_claims(exp=exp)), "exp is not a NumericDate")


def test_expired_beyond_the_skew_is_refused_and_within_it_accepted() -> None:
    _refused(_hs(_claims(exp=NOW - 61, iat=NOW - 100)), "expired")
    assert _validate_hs(_hs(_claims(exp=NOW - 30, iat=NOW - 100)))


def test_lifetime_longer_than_the_maximum_is_refused() -> None:
    _refused(_hs(_claims(exp=NOW + 300 + 61)), "too long-lived")
    assert _validate_hs(_hs(_claims(exp=NOW + 300 + 59)))
    _refused(_hs(_claims(exp=NOW + 100)), "too long-lived", _validator(assertion_max_lifetime=30))


def test_the_lifetime_refusal_names_the_flag_that_raises_the_limit() -> None:
    """Authlib's assertions live an hour by default: the description names the server's limit."""
    _refused(
        _hs(_claims(exp=NOW + 3600)),
        r"300 seconds ahead \(too long-lived: the server's --assertion-max-lifetime\)",
    )


def test_nbf_within_the_skew_is_accepted_and_beyond_refused() -> None:
    assert _validate_hs(_hs(_claims(nbf=NOW + 8)))
    _refused(_hs(_claims(nbf=NOW + 61)), "nbf is in the future")


def test_iat_in_the_future_is_refused() -> None:
    assert _validate_hs(_hs(_claims(iat=NOW + 59)))
    _refused(_hs(_claims(iat=NOW + 61)), "iat is in the future")


def test_skew_is_configurable() -> None:
    _refused(_hs(_claims(nbf=NOW + 8)), "nbf is in the future", _validator(clock_skew=5))


# --- identity and jti ---------------------------------------------------------------------------


def test_iss_must_be_the_client_id() -> None:
    _refused(_hs(_claims(iss="client-2")), "iss must be the client_id")
    _refused(_hs(_claims(iss=None)), "iss must be the client_id")


def test_sub_must_be_the_client_id() -> None:
    _refused(_hs(_claims(sub="client-2")), "sub must be the client_id")
    _refused(_hs(_claims(sub=None)), "sub must be the client_id")


@pytest.mark.parametrize("jti", [None, "", 17, ["a"]])
def test_missing_or_non_string_jti_is_refused(jti: Any) -> None:
    _refused(_hs(_claims(jti=jti)), "has no jti")


def test_overlong_jti_is_refused() -> None:
    assert _validate_hs(_hs(_claims(jti="j" * 256)))
    _refused(_hs(_claims(jti="j" * 257)), "jti is longer")


# --- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9..",
        "e30.e30.",  # {} header without alg
        "W10.e30.",  # header is an array
        "eyJhbGciOiJIUzI1NiJ9.W10.",  # claims are an array
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.",  # claims not JSON
        "eyJhbGciOiJIUzI1NiJ9.e30.a",  # signature of impossible length
        "eyJhbGciOiJIUzI1NiJ9.e30=.",  # padding
        "eyJhbGciOiJIUzI1NiJ9.e+0.",  # not base64url
        "eyJhbGciOiJIUzI1NiJ9.e30.é",
        "eyJhbGciOiJIUzI1NiJ9." + b64url_encode(b'{"exp": NaN}') + ".",
        "eyJhbGciOiJIUzI1NiJ9." + b64url_encode(b"[" * 100000) + ".",
        "eyJhbGciOiJIUzI1NiJ9." + b64url_encode(b"\xff\xfe") + ".",
        "a" * 20000,
    ],
)
def test_malformed_assertions_are_invalid_client(token: str) -> None:
    with pytest.raises(InvalidClientError, match="client_assertion"):
        _validate_hs(token)


def test_duplicate_claim_names_are_refused() -> None:
    header = b64url_encode(b'{"alg":"HS256"}')
    payload = b64url_encode(b'{"iss":"client-1","iss":"client-2"}')
    with pytest.raises(InvalidClientError, match="not a base64url JSON object"):
        parse_assertion(f"{header}.{payload}.")


def test_signing_algs_list_never_holds_none() -> None:
    assert "none" not in {alg.lower() for alg in ASSERTION_SIGNING_ALGS}
    assert set(ASSERTION_SIGNING_ALGS) == set(HMAC_ALGS) | set(ASYMMETRIC_ALGS)
