"""Every invalid_client_metadata / invalid_redirect_uri description starts with the member at fault,
and metadata_error_field reads it back (the TUI puts the message next to that field)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certbound.clientmeta import metadata_error_field, normalize_metadata
from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError, InvalidRedirectUriError, OAuthError
from certbound.jose import public_jwk
from certbound.management import ClientManager
from certbound.store.sqlite import SQLiteStore
from certbound.vault import Vault

SETTINGS = Settings(scopes=("read", "write"))
EC_JWKS = {"keys": [public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())]}
SMALL_RSA = public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())


@pytest.mark.parametrize(
    ("description", "field"),
    [
        ("scope includes values this server does not offer: x", "scope"),
        ("redirect_uris: 'x' has no host", "redirect_uris"),
        ("jwks key 0 does not parse as a JWK", "jwks"),
        ("client_name#fr must be a non-empty string", "client_name"),
        ("tls_client_auth_subject_dn: exactly one of ...", "tls_client_auth_subject_dn"),
        ("jwks_uri", "jwks_uri"),
        ("exactly one of jwks and jwks_uri", "exactly"),
        ("", None),
        ("Scope is wrong", None),
        ("scope, or something", None),
        ("9lives must be", None),
        ("client-name must be", None),
    ],
)
def test_the_leading_member_is_read(description: str, field: str | None) -> None:
    assert metadata_error_field(description) == field


REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"token_endpoint_auth_method": "magic"}, "token_endpoint_auth_method"),
    ({"token_endpoint_auth_method": 3}, "token_endpoint_auth_method"),
    ({"redirect_uris": "https://a.example/cb"}, "redirect_uris"),
    ({"redirect_uris": ["http://a.example/cb"]}, "redirect_uris"),
    ({"redirect_uris": ["https:///cb"]}, "redirect_uris"),
    ({"redirect_uris": ["nota uri"]}, "redirect_uris"),
    ({"grant_types": ["magic"]}, "grant_types"),
    ({"grant_types": "client_credentials"}, "grant_types"),
    ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}, "grant_types"),
    ({"response_types": ["magic"]}, "response_types"),
    ({"response_types": ["code"]}, "response_types"),
    ({"scope": "everything"}, "scope"),
    ({"scope": ["read"]}, "scope"),
    ({"client_name": ""}, "client_name"),
    ({"client_name#fr": 3}, "client_name"),
    ({"client_uri": "ftp://a.example"}, "client_uri"),
    ({"contacts": "me"}, "contacts"),
    ({"jwks": EC_JWKS, "jwks_uri": "https://a.example/jwks"}, "jwks"),
    ({"jwks": {"keys": []}}, "jwks"),
    ({"jwks": {"keys": [{"kty": "EC", "d": "x"}]}}, "jwks"),
    ({"jwks": {"keys": [SMALL_RSA]}}, "jwks"),
    ({"jwks": []}, "jwks"),
    ({"jwks_uri": "http://a.example/jwks"}, "jwks_uri"),
    ({"jwks_uri": "https://127.0.0.1/jwks"}, "jwks_uri"),
    ({"token_endpoint_auth_signing_alg": "none"}, "token_endpoint_auth_signing_alg"),
    ({"access_token_as_jwt": "yes"}, "access_token_as_jwt"),
    ({"tls_client_certificate_bound_access_tokens": 1}, "tls_client_certificate_bound_access_tokens"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
    (
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": EC_JWKS,
            "token_endpoint_auth_signing_alg": "HS256",
        },
        "token_endpoint_auth_signing_alg",
    ),
    (
        {"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "ES256"},
        "token_endpoint_auth_signing_alg",
    ),
    ({"token_endpoint_auth_method": "self_signed_tls_client_auth"}, "jwks"),
    ({"token_endpoint_auth_method": "tls_client_auth"}, "tls_client_auth_subject_dn"),
    (
        {
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "a.example",
            "tls_client_auth_san_email": "a@a.example",
        },
        "tls_client_auth_san_dns",
    ),
    (
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN"},
        "tls_client_auth_subject_dn",
    ),
    (
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "300.1.1.1"},
        "tls_client_auth_san_ip",
    ),
    (
        {
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "a.example",
            "tls_client_auth_ca_sha256": "zz",
        },
        "tls_client_auth_ca_sha256",
    ),
]


@pytest.mark.parametrize(("metadata", "field"), REFUSALS)
def test_every_refusal_names_its_member_first(metadata: dict[str, Any], field: str) -> None:
    with pytest.raises((InvalidClientMetadataError, InvalidRedirectUriError)) as caught:
        normalize_metadata(metadata, SETTINGS)
    assert metadata_error_field(caught.value.description) == field, caught.value.description


async def test_management_refusals_name_their_member_first(store: SQLiteStore) -> None:
    manager = ClientManager(store, Vault(bytes(range(32))), SETTINGS)
    public = (await manager.create({"token_endpoint_auth_method": "none"})).client
    cases: list[tuple[Any, str]] = [
        (manager.create({}, client_id=""), "client_id"),
        (manager.create({}, client_id="a\x1bb"), "client_id"),
        (manager.create({}, client_id=public.client_id), "client_id"),
        (manager.create({}, secret="short"), "client_secret"),
        (manager.create({"token_endpoint_auth_method": "none"}, secret="x" * 40), "client_secret"),
        (manager.rotate_secret(public), "token_endpoint_auth_method"),
    ]
    for call, field in cases:
        with pytest.raises(OAuthError) as caught:
            await call
        assert caught.value.error == "invalid_client_metadata"
        assert metadata_error_field(caught.value.description) == field, caught.value.description
