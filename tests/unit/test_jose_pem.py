"""PEM certificates and public keys as a JWK Set (RFC 7517 §5, §4.7 x5c; RFC 7638 kid): what
`certbound clients --jwks-file cert.pem` registers."""

from __future__ import annotations

import base64

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from joserfc.jwk import JWKRegistry

from certbound.jose import jwk_set_from_pem, public_jwk, rfc7638_thumbprint
from certbound.jwks import parse_jwks


def test_a_certificate_becomes_its_key_with_the_certificate_as_x5c() -> None:
    pem = trustme.CA().cert_pem.bytes()
    certificate = x509.load_pem_x509_certificate(pem)

    (key,) = jwk_set_from_pem(pem)["keys"]

    assert base64.b64decode(key["x5c"][0]) == certificate.public_bytes(Encoding.DER)
    assert {name: key[name] for name in ("kty", "crv", "x", "y")} == public_jwk(certificate.public_key())
    assert key["kid"] == rfc7638_thumbprint(public_jwk(certificate.public_key()))
    assert parse_jwks({"keys": [key]})  # registrable as is
    assert JWKRegistry.import_key(key).as_dict(private=False)["x"] == key["x"]


@pytest.mark.parametrize(
    ("private_key", "encoding_format"),
    [
        (ec.generate_private_key(ec.SECP384R1()), PublicFormat.SubjectPublicKeyInfo),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), PublicFormat.SubjectPublicKeyInfo),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), PublicFormat.PKCS1),
        (ed25519.Ed25519PrivateKey.generate(), PublicFormat.SubjectPublicKeyInfo),
    ],
)
def test_public_keys_become_keys_without_x5c(private_key: object, encoding_format: PublicFormat) -> None:
    public_key = private_key.public_key()
    pem = public_key.public_bytes(Encoding.PEM, encoding_format)

    (key,) = jwk_set_from_pem(pem)["keys"]

    assert key == {**public_jwk(public_key), "kid": rfc7638_thumbprint(public_jwk(public_key))}


def test_several_blocks_become_several_keys_in_order() -> None:
    first, second = trustme.CA(), trustme.CA()
    pem = b"text before\n" + first.cert_pem.bytes() + b"between\n" + second.cert_pem.bytes()
    kids = [key["kid"] for key in jwk_set_from_pem(pem)["keys"]]
    expected = [
        rfc7638_thumbprint(public_jwk(x509.load_pem_x509_certificate(ca.cert_pem.bytes()).public_key()))
        for ca in (first, second)
    ]
    assert kids == expected


def test_a_private_key_is_refused_even_next_to_a_certificate() -> None:
    ca = trustme.CA()
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    with pytest.raises(ValueError, match="PEM block 2 is a private key"):
        jwk_set_from_pem(ca.cert_pem.bytes() + key)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "no PEM certificate or public key found"),
        (b'{"keys": []}', "no PEM certificate or public key found"),
        (b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "PEM block 1 is a X509 CRL"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM block 1: not a certificate"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM block 1: not a public key"),
    ],
)
def test_anything_else_is_refused(pem: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jwk_set_from_pem(pem)
