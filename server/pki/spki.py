"""Public-key equality for self_signed_tls_client_auth (RFC 8705 §2.2): the certificate's key
against the keys of the client's JWK Set, compared as keys, never as encodings of certificates.

Two keys are equal when their DER SubjectPublicKeyInfo is: that encoding is canonical for RSA
(modulus and exponent), EC (curve and uncompressed point) and EdDSA (raw key), so it compares the
key material itself. A JWK's `x5c` certificate holds the JWK's own key (RFC 7517 §4.7: every JWK
is imported through certbound.jose.public_key_from_jwk, which refuses any other), so the JWK's key
is what is compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from cryptography import x509
from joserfc.jwk import Key

# Defined beside the JWK import, which needs it without loading the PKI package.
from certbound.jose import public_key_der

__all__ = [
    "certificate_key_der",
    "certificate_key_registered",
    "public_key_der",
    "registered_key_ders",
]


def registered_key_ders(keys: Iterable[Key]) -> frozenset[bytes]:
    """The DER SubjectPublicKeyInfo of every usable key in a client's JWK Set."""
    return frozenset(der for der in (public_key_der(key.public_key) for key in keys) if der is not None)


@lru_cache(maxsize=4096)
def certificate_key_der(cert: x509.Certificate) -> bytes | None:
    """The certificate's public key as DER SubjectPublicKeyInfo; cached, because keep-alive
    requests present the same certificate object again and again."""
    return public_key_der(cert.public_key())


def certificate_key_registered(cert: x509.Certificate, keys: Iterable[Key]) -> bool:
    """Whether the certificate's public key is one of `keys`."""
    presented = certificate_key_der(cert)
    return presented is not None and presented in registered_key_ders(keys)
