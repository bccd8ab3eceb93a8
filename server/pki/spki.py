"""Public-key equality for self_signed_tls_client_auth (RFC 8705 §2.2): the certificate's key
against the keys of the client's JWK Set, compared as keys, never as encodings of certificates.

Two keys are equal when their DER SubjectPublicKeyInfo is: that encoding is canonical for RSA
(modulus and exponent), EC (curve and uncompressed point) and EdDSA (raw key), so it compares the
key material itself. A JWK carrying `x5c` counts by the key of its first certificate (RFC 7517
§4.7), which is the certificate the client registered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc.jwk import Key

__all__ = [
    "certificate_key_der",
    "certificate_key_registered",
    "jwk_certificate",
    "public_key_der",
    "registered_key_ders",
]

_ASYMMETRIC = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)


def public_key_der(key: object) -> bytes | None:
    """The DER SubjectPublicKeyInfo of an RSA, EC or EdDSA public key; None for anything else."""
    if not isinstance(key, _ASYMMETRIC):
        return None
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def jwk_certificate(jwk: Key) -> x509.Certificate | None:
    """The first `x5c` certificate of a JWK (standard base64 DER, RFC 7517 §4.7), if any.
    Raises ValueError when `x5c` is present but is not a certificate."""
    chain = jwk.get("x5c")
    if chain is None:
        return None
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise ValueError("x5c must be a non-empty array of base64 certificates")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"x5c[0] is not a base64 DER certificate: {exc}") from None


def _jwk_key_der(jwk: Key) -> bytes | None:
    try:
        cert = jwk_certificate(jwk)
    except ValueError:
        return None  # refused at registration; a fetched set's broken entry matches nothing
    return public_key_der(cert.public_key() if cert is not None else jwk.public_key)


def registered_key_ders(keys: Iterable[Key]) -> frozenset[bytes]:
    """The DER SubjectPublicKeyInfo of every usable key in a client's JWK Set."""
    return frozenset(der for der in map(_jwk_key_der, keys) if der is not None)


@lru_cache(maxsize=4096)
def certificate_key_der(cert: x509.Certificate) -> bytes | None:
    """The certificate's public key as DER SubjectPublicKeyInfo; cached, because keep-alive
    requests present the same certificate object again and again."""
    return public_key_der(cert.public_key())


def certificate_key_registered(cert: x509.Certificate, keys: Iterable[Key]) -> bool:
    """Whether the certificate's public key is one of `keys`."""
    presented = certificate_key_der(cert)
    return presented is not None and presented in registered_key_ders(keys)
