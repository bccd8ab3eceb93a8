"""The key policy shared by JWK Sets, assertions, certificate paths and the handshake (issue 9)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from certbound.keypolicy import (
    RSA_MAX_BITS,
    RSA_MAX_EXPONENT,
    RSA_MIN_BITS,
    KeyPolicyError,
    check_public_key,
    costly_to_verify,
)

# Moduli of the sizes at the bounds; public-key checks never need the factors.
_MODULUS = {
    bits: (1 << (bits - 1)) + 1 for bits in (RSA_MIN_BITS - 1, RSA_MIN_BITS, RSA_MAX_BITS, RSA_MAX_BITS + 1)
}


def _rsa(bits: int, exponent: int = 65537) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(exponent, _MODULUS[bits]).public_key()


@pytest.mark.parametrize(
    "key",
    [
        _rsa(RSA_MIN_BITS),
        _rsa(RSA_MAX_BITS),
        _rsa(RSA_MIN_BITS, 3),
        _rsa(RSA_MAX_BITS, RSA_MAX_EXPONENT),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        ec.generate_private_key(ec.SECP521R1()).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
        ed448.Ed448PrivateKey.generate().public_key(),
    ],
    ids=["rsa-2048", "rsa-8192", "e-3", "e-2^32+1", "p256", "p384", "p521", "ed25519", "ed448"],
)
def test_keys_within_the_policy(key: object) -> None:
    check_public_key(key)


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        (_rsa(RSA_MIN_BITS - 1), "RSA key of 2047 bits"),
        (_rsa(RSA_MAX_BITS + 1), "RSA key of 8193 bits"),
        (_rsa(RSA_MIN_BITS, RSA_MAX_EXPONENT + 2), "public exponent 4294967299"),
        (_rsa(RSA_MIN_BITS, 2**64 + 1), "public exponent of 65 bits"),
        (_rsa(RSA_MIN_BITS, (1 << 2000) + 1), "public exponent of 2001 bits"),
        (ec.generate_private_key(ec.SECP256K1()).public_key(), "curve secp256k1"),
        (ec.generate_private_key(ec.BrainpoolP256R1()).public_key(), "curve brainpoolP256r1"),
        (x25519.X25519PrivateKey.generate().public_key(), "X25519PublicKey"),
        (dsa.generate_private_key(1024).public_key(), "DSAPublicKey"),
        (b"raw bytes", "bytes"),
    ],
)
def test_keys_outside_the_policy(key: object, rule: str) -> None:
    with pytest.raises(KeyPolicyError, match=rule):
        check_public_key(key)


@pytest.mark.parametrize(
    ("key", "costly"),
    [
        (_rsa(RSA_MIN_BITS), False),
        (rsa.RSAPublicNumbers(RSA_MAX_EXPONENT, (1 << 4095) + 1).public_key(), False),
        (rsa.RSAPublicNumbers(65537, (1 << 4096) + 1).public_key(), True),
        (_rsa(RSA_MAX_BITS), True),
        (ec.generate_private_key(ec.SECP256R1()).public_key(), False),
        (ec.generate_private_key(ec.SECP384R1()).public_key(), True),
        (ec.generate_private_key(ec.SECP521R1()).public_key(), True),
        (ed25519.Ed25519PrivateKey.generate().public_key(), False),
        (ed448.Ed448PrivateKey.generate().public_key(), True),
    ],
    ids=["rsa-2048", "rsa-4096-fermat", "rsa-4097", "rsa-8192", "p256", "p384", "p521", "ed25519", "ed448"],
)
def test_which_keys_are_costly_to_verify(key: object, costly: bool) -> None:
    assert costly_to_verify(key) is costly
