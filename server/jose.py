"""Small JOSE primitives: base64url (RFC 7515 §2), JWK thumbprints (RFC 7638), public JWKs of keys
and PEM files (RFC 7517), and the import of one untrusted public JWK (RFC 7517 §4) under the key policy.

Access tokens are signed here directly with `cryptography` rather than through a general JOSE
library: one token costs one signature plus two base64url encodings and one JSON dump.

`public_key_from_jwk` is the one door for a public key a peer hands us as a JWK: a member of a
registered or fetched JWK Set, or a JWS header's embedded `jwk` (DPoP, RFC 9449 §4.2). It refuses
private or symmetric material, keys outside certbound.keypolicy (sizes checked on the encoded
members before any number is decoded), and an `x5c` whose first certificate holds another key
(RFC 7517 §4.7).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import warnings
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import JWKRegistry, Key

from certbound.keypolicy import RSA_MAX_BITS, RSA_MAX_EXPONENT, KeyPolicyError, check_public_key

__all__ = [
    "JWS_ASYMMETRIC_ALGS",
    "JWS_HMAC_ALGS",
    "JWS_SIGNING_ALGS",
    "JWKError",
    "b64url_decode",
    "b64url_encode",
    "decode_json_segment",
    "json_compact",
    "jwk_set_from_pem",
    "public_jwk",
    "public_key_der",
    "public_key_from_jwk",
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
_ASYMMETRIC = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)

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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2 / RFC 7519 §4: duplicate member names are either rejected or resolved to the
    # last one; rejecting means two parsers can never disagree about a header member or a claim.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


# Built once: a JSONDecoder is immutable, and building one per call was a third of the parse cost.
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant)


def decode_json_segment(segment: str) -> Any:
    """The JSON value of a base64url segment of a compact JWS (RFC 7515 §7.1), read strictly:
    duplicate member names, NaN and Infinity are refused. ValueError for anything else."""
    try:
        return _STRICT_JSON.decode(b64url_decode(segment).decode("utf-8"))
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


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


def public_key_der(key: object) -> bytes | None:
    """The DER SubjectPublicKeyInfo of an RSA, EC or EdDSA public key; None for anything else.
    That encoding is canonical, so equal DER means the same key (certbound.pki.spki compares keys
    with it)."""
    if not isinstance(key, _ASYMMETRIC):
        return None
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


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


class JWKError(ValueError):
    """A JWK that is not a usable public key; the message completes "the key ..."."""


# RFC 7517 §9.2 / RFC 7518 §6: members that only private (or symmetric) keys have.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def _b64url_chars(octets: int) -> int:
    return -(-octets * 4 // 3)


# The longest encodings of an in-policy modulus and exponent (one leading zero octet tolerated).
_MAX_MODULUS_CHARS = _b64url_chars(RSA_MAX_BITS // 8 + 1)
_MAX_EXPONENT_CHARS = _b64url_chars((RSA_MAX_EXPONENT.bit_length() + 7) // 8 + 1)


def _check_encoded_size(member: dict[str, Any]) -> None:
    """Refuse an oversized RSA modulus or exponent before decoding it into a number."""
    if member.get("kty") != "RSA":
        return
    n, e = member.get("n"), member.get("e")
    if isinstance(n, str) and len(n) > _MAX_MODULUS_CHARS:
        raise JWKError(f"is an RSA key of more than {RSA_MAX_BITS} bits")
    if isinstance(e, str) and len(e) > _MAX_EXPONENT_CHARS:
        raise JWKError(f"is an RSA key with a public exponent above {RSA_MAX_EXPONENT}")


def _check_x5c(chain: object, key: Key) -> None:
    if not isinstance(chain, list) or not chain or not all(isinstance(cert, str) for cert in chain):
        raise JWKError("has an x5c that is not a non-empty array of base64 certificates")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
        certified = public_key_der(cert.public_key())
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise JWKError("has an x5c[0] that is not a base64 DER certificate") from None
    if certified is None or certified != public_key_der(key.public_key):
        raise JWKError("has an x5c[0] certificate that holds another key than the JWK (RFC 7517 §4.7)")


def public_key_from_jwk(member: object) -> Key:
    """Import one untrusted public JWK; JWKError says what is wrong with it."""
    if not isinstance(member, dict):
        raise JWKError("is not a JSON object")
    private = [name for name in _PRIVATE_MEMBERS if name in member]
    if private:
        raise JWKError(
            f"holds private or symmetric key material ({', '.join(private)}): only public keys are accepted"
        )
    if "kid" in member and not isinstance(member["kid"], str):
        raise JWKError("has a kid that is not a string")
    _check_encoded_size(member)
    try:
        with warnings.catch_warnings():
            # joserfc warns about small RSA keys; the policy just below refuses them instead.
            warnings.simplefilter("ignore", SecurityWarning)
            key = JWKRegistry.import_key(member)
    except (JoseError, ValueError, TypeError, KeyError, UnsupportedAlgorithm) as exc:
        raise JWKError(f"does not parse as a JWK: {exc}") from None
    try:
        check_public_key(key.public_key)
    except KeyPolicyError as exc:
        raise JWKError(f"is {exc}") from None
    if "x5c" in member:
        _check_x5c(member["x5c"], key)
    return key
