"""The public keys and chains a peer may make this server process (issue 9; NIST SP 800-131A,
SP 800-186, RFC 8037), one policy for every door: a JWK Set (registration, admin, jwks_uri fetch),
a client assertion's key, a client certificate path and, at the handshake, the TLS layer.

Verification cost grows with the RSA modulus and, linearly, with the bit length of the public
exponent: an exponent near the modulus size makes one RSA verification thousands of times dearer
than 65537 (a 3072-bit key with a 3071-bit exponent costs ~5 ms per signature instead of ~0.06 ms),
and OpenSSL only caps the exponent above 3072-bit moduli. So the policy bounds both:

- RSA: modulus of `RSA_MIN_BITS` to `RSA_MAX_BITS` bits; public exponent up to `RSA_MAX_EXPONENT`
  (2^32 + 1; cryptography itself refuses even exponents and exponents below 3). Every exponent in
  real use (65537, 3, 2^32 + 1) passes; the worst allowed verification (8192 bits,
  e = 2^32 + 1) costs ~0.6 ms.
- EC: P-256, P-384, P-521 (the curves of ES256/384/512); no others (secp256k1, Brainpool...).
- EdDSA: Ed25519 and Ed448.
- Nothing else (DSA, X25519/X448 key agreement keys, unknown types).

`MAX_INTERMEDIATES` bounds how many certificates a client may send above its leaf; it is the verify
depth of the handshake and the path-validation limit alike. `costly_to_verify` tells which keys are
worth verifying off the event loop (certbound.cpupool).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

__all__ = [
    "ALLOWED_CURVES",
    "MAX_INTERMEDIATES",
    "RSA_MAX_BITS",
    "RSA_MAX_EXPONENT",
    "RSA_MIN_BITS",
    "KeyPolicyError",
    "check_public_key",
    "costly_to_verify",
]

#: NIST SP 800-131A: smaller RSA moduli are refused.
RSA_MIN_BITS = 2048
#: Larger moduli buy no security anyone needs and cost quadratically more per verification.
RSA_MAX_BITS = 8192
#: The largest public exponent accepted (2^32 + 1, the largest Fermat-form exponent in use).
RSA_MAX_EXPONENT = 2**32 + 1
#: cryptography curve name -> JOSE name (RFC 7518 §6.2.1.1).
ALLOWED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
#: Certificates a client may send above its leaf (intermediates); more is refused unread.
MAX_INTERMEDIATES = 8


class KeyPolicyError(ValueError):
    """A public key outside the policy; the message says which rule it breaks."""


def check_public_key(key: object) -> None:
    """Raise KeyPolicyError unless `key` (a `cryptography` public key) is within the policy."""
    if isinstance(key, rsa.RSAPublicKey):
        _check_rsa(key)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            allowed = ", ".join(ALLOWED_CURVES.values())
            raise KeyPolicyError(f"an EC key on curve {key.curve.name} (allowed: {allowed})")
    elif not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise KeyPolicyError(
            f"a {type(key).__name__} key (allowed: RSA, EC P-256/P-384/P-521, Ed25519, Ed448)"
        )


def _check_rsa(key: rsa.RSAPublicKey) -> None:
    bits = key.key_size
    if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
        raise KeyPolicyError(f"an RSA key of {bits} bits (allowed: {RSA_MIN_BITS} to {RSA_MAX_BITS})")
    exponent = key.public_numbers().e
    # cryptography itself refuses even exponents and exponents below 3.
    if exponent > RSA_MAX_EXPONENT:
        shown = str(exponent) if exponent.bit_length() <= 64 else f"of {exponent.bit_length()} bits"
        raise KeyPolicyError(f"an RSA key with public exponent {shown} (allowed: up to {RSA_MAX_EXPONENT})")


def costly_to_verify(key: object) -> bool:
    """Whether one signature check with `key` costs more than handing it to a thread (~0.1 ms of
    CPU, measured): RSA above 4096 bits (0.3-0.6 ms at 8192), EC P-384 and P-521 (~0.5 ms), Ed448
    (~0.2 ms). RSA up to 4096 bits, P-256 and Ed25519 (0.02-0.1 ms) are verified in place."""
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size > 4096
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.name != "secp256r1"
    return isinstance(key, ed448.Ed448PublicKey)
