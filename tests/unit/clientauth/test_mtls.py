"""Registration rules of the two mTLS methods and the CA pin format (RFC 8705 §2, SPEC §9)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from certbound.clientauth.mtls import CA_PIN, SelfSignedTlsClientAuth, TlsClientAuth, parse_ca_pin
from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError
from certbound.jose import public_jwk
from tests.unit.pki.builders import name, self_signed

DIGEST = hashlib.sha256(b"a CA certificate").digest()


@pytest.mark.parametrize(
    "spelling",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        ":".join(f"{byte:02X}" for byte in DIGEST),  # `openssl x509 -fingerprint -sha256`
        base64.urlsafe_b64encode(DIGEST).rstrip(b"=").decode(),
    ],
)
def test_ca_pin_spellings(spelling: str) -> None:
    assert parse_ca_pin(spelling) == DIGEST


@pytest.mark.parametrize(
    "bad",
    [
        "",
        DIGEST.hex()[:-2],
        DIGEST.hex() + "00",
        "zz" * 32,
        base64.urlsafe_b64encode(DIGEST).decode(),  # padded
        base64.b64encode(hashlib.sha1(b"x").digest()).decode(),
        42,
    ],
)
def test_malformed_ca_pins(bad: Any) -> None:
    with pytest.raises(ValueError, match=CA_PIN):
        parse_ca_pin(bad)


def test_tls_client_auth_metadata() -> None:
    method, settings = TlsClientAuth(), Settings()
    method.validate_metadata({"tls_client_auth_san_dns": "a.example"}, settings)
    method.validate_metadata({"tls_client_auth_san_dns": "a.example", CA_PIN: DIGEST.hex()}, settings)
    for metadata in (
        {},
        {"tls_client_auth_san_dns": "a.example", "tls_client_auth_subject_dn": "CN=a"},
        {"tls_client_auth_subject_dn": "CN"},
        {"tls_client_auth_san_dns": "a.example", CA_PIN: "not a digest"},
    ):
        with pytest.raises(InvalidClientMetadataError):
            method.validate_metadata(metadata, settings)


def test_self_signed_metadata() -> None:
    method, settings = SelfSignedTlsClientAuth(), Settings()
    key = self_signed(name()).key.public_key()
    method.validate_metadata({"jwks": {"keys": [public_jwk(key)]}}, settings)
    method.validate_metadata({"jwks_uri": "https://client.example/jwks"}, settings)
    for metadata in (
        {},
        {"jwks": {"keys": [public_jwk(key)]}, "jwks_uri": "https://client.example/jwks"},
        {"jwks": {"keys": [{**public_jwk(key), "x5c": ["%%%"]}]}},
        {"jwks_uri": "http://client.example/jwks"},
    ):
        with pytest.raises(InvalidClientMetadataError):
            method.validate_metadata(metadata, settings)
