"""Small JOSE primitives for the hot path: base64url (RFC 7515 §2), JWK thumbprints (RFC 7638),
public JWKs of keys and PEM files (RFC 7517).

Access tokens are signed here directly with `cryptography` rather than through a general JOSE
library: one token costs one signature plus two base64url encodings and one JSON dump.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

__all__ = [
    "JWS_ASYMMETRIC_ALGS",
    "JWS_HMAC_ALGS",
    "JWS_SIGNING_ALGS",
    "b64url_decode",
    "b64url_encode",
    "json_compact",
    "jwk_set_from_pem",
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
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    raise TypeError(f"unsupported key type {type(key).__name__}")


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def _supported(key: object, where: str) -> PublicKey:
    if not isinstance(key, PublicKey):
        raise ValueError(f"{where} holds a {type(key).__name__}, not an EC, RSA or Ed25519 key")
    return key


def jwk_set_from_pem(pem: bytes) -> dict[str, Any]:
    """The JWK Set (RFC 7517 §5) of the certificates and public keys in a PEM file, each key with
    its RFC 7638 thumbprint as `kid`; a certificate's key keeps the certificate as `x5c` (§4.7:
    standard base64 of the DER). A private key or any other PEM block is a ValueError: a client's
    jwks holds public keys only."""
    keys: list[dict[str, Any]] = []
    for index, block in enumerate(_PEM_BLOCK.finditer(pem)):
        label, where = block.group(1).decode("ascii"), f"PEM block {index + 1}"
        extra: dict[str, Any] = {}
        if label == "CERTIFICATE":
            try:
                certificate = x509.load_pem_x509_certificate(block.group(0))
            except ValueError as exc:
                raise ValueError(f"{where}: not a certificate ({exc})") from None
            jwk = public_jwk(_supported(certificate.public_key(), where))
            extra["x5c"] = [base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")]
        elif label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
            try:
                public_key = load_pem_public_key(block.group(0))
            except ValueError as exc:
                raise ValueError(f"{where}: not a public key ({exc})") from None
            jwk = public_jwk(_supported(public_key, where))
        elif "PRIVATE KEY" in label:
            raise ValueError(f"{where} is a private key: give the certificate or the public key")
        else:
            raise ValueError(f"{where} is a {label}, not a certificate or a public key")
        keys.append({**jwk, "kid": rfc7638_thumbprint(jwk), **extra})
    if not keys:
        raise ValueError("no PEM certificate or public key found")
    return {"keys": keys}
