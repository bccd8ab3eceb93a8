"""Handshake bounds (issue 9, SPEC §8): which client certificate chains the TLS layer will look at.

The TLS layer requests a certificate and accepts any *within policy*: trust is the auth method's
business, but the cost of looking at a chain is ours, and it is paid before anyone is
authenticated. So a chain is refused during the handshake, before OpenSSL verifies a single
signature with one of its keys, when it is longer than any path the application would validate
(`MAX_INTERMEDIATES`), when one of its keys is outside `key_policy_violation`'s policy, or
(right after the handshake) when the client sent more certificates or bytes than that.

The key policy is the one every key a peer hands us should meet (certificate or JWK): RSA with a
2048-8192-bit modulus and a small odd public exponent, the NIST curves P-256, P-384 and P-521, and
Ed25519. Nothing else.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PublicKeyTypes
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _openssl_lib

__all__ = [
    "MAX_CHAIN_BYTES",
    "MAX_INTERMEDIATES",
    "MAX_RSA_EXPONENT",
    "MAX_RSA_MODULUS_BITS",
    "MIN_RSA_MODULUS_BITS",
    "key_policy_violation",
    "refusal_reason",
    "verify_within_policy",
]

#: Certificates a client may send after its leaf; also the path length tls_client_auth validates
#: (certbound.pki.trust) and OpenSSL's verify depth, so the TLS layer never refuses a chain the
#: application would have accepted, and never spends work on one it would refuse.
MAX_INTERMEDIATES = 8

#: The DER size of everything a client sends (leaf included). Nine certificates with RSA-8192 keys
#: and signatures take about 23 KB; real client chains take 2-6 KB.
MAX_CHAIN_BYTES = 32 * 1024

MIN_RSA_MODULUS_BITS = 2048
MAX_RSA_MODULUS_BITS = 8192

#: An RSA signature check costs one modular exponentiation by e: with a 3072-bit e it costs as much as
#: a private-key operation (~10 ms), which is the huge-exponent attack of issue 9. OpenSSL only caps e
#: (at 64 bits) above 3072-bit moduli. 2^32 + 1 (33 bits) keeps a check within about twice the cost
#: with 65537, and admits every exponent in use: 65537 almost everywhere, 3 on old keys, and nothing
#: above 32 bits since Windows' CryptoAPI stores the exponent in a 32-bit field.
MAX_RSA_EXPONENT = 2**32 + 1

_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_CHAIN_TOO_LONG: int = _openssl_lib.X509_V_ERR_CERT_CHAIN_TOO_LONG


def key_policy_violation(key: PublicKeyTypes | CertificatePublicKeyTypes) -> str | None:
    """Why `key` is outside the key policy (module docstring), or None when it is within it."""
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_MODULUS_BITS <= key.key_size <= MAX_RSA_MODULUS_BITS:
            return (
                f"an RSA key of {key.key_size} bits (allowed: {MIN_RSA_MODULUS_BITS}-{MAX_RSA_MODULUS_BITS})"
            )
        exponent = key.public_numbers().e
        if exponent > MAX_RSA_EXPONENT or exponent < 3 or exponent % 2 == 0:
            return f"an RSA public exponent of {exponent.bit_length()} bits (allowed: odd, 3 to 2^32+1)"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, _CURVES):
            return None
        return f"an EC key on {key.curve.name} (allowed: P-256, P-384, P-521)"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return f"a {type(key).__name__.removesuffix('PublicKey')} key (allowed: RSA, EC, Ed25519)"


def verify_within_policy(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    """The server context's verify callback: accept any certificate, trusted or not, within policy.

    OpenSSL builds the chain first (no signatures checked), then calls this for its top certificate
    with the reason it is untrusted (or that the chain is longer than the verify depth), then for each
    certificate below, right after checking that certificate's signature with the key above it. So
    every key is judged here before OpenSSL uses it, and a refusal costs no signature check at all.
    """
    if errno == _CHAIN_TOO_LONG:
        conn.set_app_data(f"more than {MAX_INTERMEDIATES} intermediate certificates")
        return False
    try:
        violation = key_policy_violation(cert.to_cryptography().public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        # OpenSSL parsed it, cryptography's stricter parser did not; or an algorithm it lacks.
        violation = f"a key cryptography cannot load ({exc})"
    if violation is None:
        return True
    conn.set_app_data(f"the certificate at depth {depth} has {violation}")
    return False


def refusal_reason(conn: SSL.Connection) -> str | None:
    """Why `verify_within_policy` refused the peer's chain on `conn`, or None if it did not."""
    reason = conn.get_app_data()
    return reason if isinstance(reason, str) else None
