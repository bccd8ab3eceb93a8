"""Registration rules of client_secret_jwt and private_key_jwt (SPEC §9), through their
`validate_metadata` hooks and through `normalize_metadata`, which every front door uses."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.errors import SecurityWarning
from joserfc.jwk import RSAKey

from certbound.clientauth.assertion import ASYMMETRIC_ALGS, HMAC_ALGS
from certbound.clientauth.jwt_methods import ClientSecretJwt, PrivateKeyJwt
from certbound.clientmeta import normalize_metadata
from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError
from tests.assertion_kit import generate_key, public_jwks

SETTINGS = Settings(issuer="https://as.example")
KEY = generate_key("ES256", kid="k1")


def _private_key_jwt(**metadata: Any) -> dict[str, Any]:
    return {"token_endpoint_auth_method": "private_key_jwt", **metadata}


def test_private_key_jwt_with_inline_jwks_registers() -> None:
    stored = normalize_metadata(_private_key_jwt(jwks=public_jwks(KEY)), SETTINGS)
    assert stored["jwks"] == public_jwks(KEY)


def test_private_key_jwt_with_https_jwks_uri_registers() -> None:
    stored = normalize_metadata(_private_key_jwt(jwks_uri="https://client.example/jwks"), SETTINGS)
    assert stored["jwks_uri"] == "https://client.example/jwks"


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"jwks": public_jwks(KEY), "jwks_uri": "https://client.example/jwks"},
    ],
)
def test_private_key_jwt_needs_jwks_xor_jwks_uri(metadata: dict[str, Any]) -> None:
    with pytest.raises(InvalidClientMetadataError, match="jwks"):
        PrivateKeyJwt().validate_metadata(_private_key_jwt(**metadata), SETTINGS)
    with pytest.raises(InvalidClientMetadataError, match="jwks"):
        normalize_metadata(_private_key_jwt(**metadata), SETTINGS)


@pytest.mark.parametrize(
    ("jwks", "problem"),
    [
        ([KEY.as_dict(private=False)], "not a JWK Set"),
        ({"keys": {}}, "not a JWK Set"),
        ({"keys": []}, "holds no keys"),
        ({"keys": ["x"]}, "not a JSON object"),
        ({"keys": [{"kty": "EC", "crv": "P-256"}]}, "does not parse"),
        ({"keys": [{"kty": "nope"}]}, "does not parse"),
        ({"keys": [KEY.as_dict(private=True)]}, "private"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "symmetric"),
        ({"keys": [{**KEY.as_dict(private=False), "kid": 3}]}, "kid that is not a string"),
    ],
)
def test_private_key_jwt_jwks_must_hold_public_keys_that_parse(jwks: Any, problem: str) -> None:
    with pytest.raises(InvalidClientMetadataError, match=problem):
        PrivateKeyJwt().validate_metadata(_private_key_jwt(jwks=jwks), SETTINGS)


def test_rsa_keys_below_2048_bits_are_refused_at_registration() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.warns(SecurityWarning):
        jwk = RSAKey.import_key(weak).as_dict()
    with pytest.raises(InvalidClientMetadataError, match="1024 bits"):
        PrivateKeyJwt().validate_metadata(_private_key_jwt(jwks={"keys": [jwk]}), SETTINGS)
    strong = generate_key("RS256")
    PrivateKeyJwt().validate_metadata(_private_key_jwt(jwks=public_jwks(strong)), SETTINGS)


@pytest.mark.parametrize(
    "uri",
    [
        "http://client.example/jwks",
        "ftp://client.example/jwks",
        "https:///jwks",
        "https://client.example/jwks#frag",
        "https://user:pw@client.example/jwks",
        "https://127.0.0.1/jwks",
        "https://[::1]/jwks",
        "https://10.0.0.8/jwks",
        "https://169.254.169.254/latest",
        "https://127.1/jwks",
        7,
    ],
)
def test_jwks_uri_must_be_public_https(uri: Any) -> None:
    with pytest.raises(InvalidClientMetadataError, match="jwks_uri"):
        PrivateKeyJwt().validate_metadata(_private_key_jwt(jwks_uri=uri), SETTINGS)


def test_private_literal_jwks_uri_is_allowed_with_allow_private_fetch() -> None:
    settings = Settings(issuer="https://as.example", allow_private_fetch=True)
    PrivateKeyJwt().validate_metadata(_private_key_jwt(jwks_uri="https://127.0.0.1:9999/jwks"), settings)


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
def test_private_key_jwt_accepts_asymmetric_signing_algs(alg: str) -> None:
    metadata = _private_key_jwt(jwks=public_jwks(KEY), token_endpoint_auth_signing_alg=alg)
    PrivateKeyJwt().validate_metadata(metadata, SETTINGS)


@pytest.mark.parametrize("alg", [*HMAC_ALGS, "none", "ES256K"])
def test_private_key_jwt_refuses_other_signing_algs(alg: str) -> None:
    metadata = _private_key_jwt(jwks=public_jwks(KEY), token_endpoint_auth_signing_alg=alg)
    with pytest.raises(InvalidClientMetadataError, match="token_endpoint_auth_signing_alg"):
        PrivateKeyJwt().validate_metadata(metadata, SETTINGS)


@pytest.mark.parametrize("alg", HMAC_ALGS)
def test_client_secret_jwt_accepts_hmac_signing_algs(alg: str) -> None:
    stored = normalize_metadata(
        {"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": alg}, SETTINGS
    )
    assert stored["token_endpoint_auth_signing_alg"] == alg


@pytest.mark.parametrize("alg", [*ASYMMETRIC_ALGS, "none"])
def test_client_secret_jwt_refuses_other_signing_algs(alg: str) -> None:
    with pytest.raises(InvalidClientMetadataError, match="token_endpoint_auth_signing_alg"):
        ClientSecretJwt().validate_metadata(
            {"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": alg},
            SETTINGS,
        )
