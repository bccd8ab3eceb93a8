"""Small JOSE primitives for the hot path: base64url (RFC 7515 §2), JWK thumbprints (RFC 7638).

Access tokens are signed here directly with `cryptography` rather than through a general JOSE
library: one token costs one signature plus two base64url encodings and one JSON dump.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = [
    "JWS_ASYMMETRIC_ALGS",
    "JWS_HMAC_ALGS",
    "JWS_SIGNING_ALGS",
    "b64url_decode",
    "b64url_encode",
    "json_compact",
    "public_jwk",
    "rfc7638_thumbprint",
]

#: RFC 7518 §3.1 MACs a client may authenticate with (client_secret_jwt).
JWS_HMAC_ALGS: tuple[str, ...] = ("HS256", "HS384", "HS512")
#: RFC 7518 §3.1 and RFC 8037 signatures a client may authenticate with (private_key_jwt).
JWS_ASYMMETRIC_ALGS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
#: Every client signing algorithm (SPEC §5); `none` is never among them.
JWS_SIGNING_ALGS: tuple[str, ...] = JWS_HMAC_ALGS + JWS_ASYMMETRIC_ALGS

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding; raises ValueError on anything else."""
    if "=" in text or not text.isascii():
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: One encoder for the hot path: `json.dumps` with non-default arguments builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def json_compact(value: Any) -> bytes:
    return _COMPACT.encode(value).encode("utf-8")


def _int_b64(number: int) -> str:
    return b64url_encode(number.to_bytes((number.bit_length() + 7) // 8 or 1, "big"))


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The JWK (RFC 7517/7518/8037) of a public key: only the required members."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        return {
            "kty": "EC",
            "crv": _CURVES[key.curve.name],
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {"kty": "RSA", "n": _int_b64(rsa_numbers.n), "e": _int_b64(rsa_numbers.e)}
    if isinstance(key, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    raise TypeError(f"unsupported key type {type(key).__name__}")


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())
