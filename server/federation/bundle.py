"""SPIFFE bundles (SPIFFE Trust Domain and Bundle §4, JWT-SVID and X509-SVID §6).

A bundle is a JWK Set whose members say by `use` what they authenticate: `jwt-svid` keys verify
JWT-SVIDs, `x509-svid` entries carry in `x5c` the CA certificate X.509-SVIDs chain to. Members of
an unknown `use` or key type are ignored (§4.1.3, §4.2.1); a member of a known kind that does not
parse refuses the whole bundle (a broken bundle is not half trusted). `spiffe_refresh_hint` (§4.1.2)
says how often to fetch it again. Every key passes certbound.jose.public_key_from_jwk (public,
within the key policy, an `x5c` holding the same key).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography import x509
from joserfc.jwk import Key

from certbound.jose import JWKError, public_key_from_jwk

__all__ = ["MAX_BUNDLE_KEYS", "SpiffeBundle", "parse_bundle"]

#: Members a bundle may hold: authorities and keys of a few overlapping rotations.
MAX_BUNDLE_KEYS = 32
_KNOWN_KEY_TYPES = ("EC", "RSA", "OKP")
_JWT_SVID = "jwt-svid"
_X509_SVID = "x509-svid"


@dataclass(frozen=True, slots=True, eq=False)
class SpiffeBundle:
    #: Keys that verify JWT-SVIDs.
    jwt_keys: tuple[Key, ...]
    #: CA certificates X.509-SVIDs chain to.
    x509_authorities: tuple[x509.Certificate, ...]
    #: Seconds until the publisher suggests fetching it again, when it says.
    refresh_hint: int | None = None


def _authority(member: dict[str, object], index: int) -> x509.Certificate:
    chain = member.get("x5c")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise ValueError(f"bundle key {index} (x509-svid) has no x5c certificate")
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
    except (binascii.Error, ValueError):
        raise ValueError(f"bundle key {index} (x509-svid) has an x5c that is not a DER certificate") from None
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        constraints = None
    if constraints is None or not constraints.ca:
        raise ValueError(f"bundle key {index} (x509-svid) is not a CA certificate")
    return certificate


def parse_bundle(document: object) -> SpiffeBundle:
    """The bundle a JSON document holds; ValueError saying what is wrong with it."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a SPIFFE bundle is a JWK Set (a JSON object with a "keys" array)')
    members: list[object] = document["keys"]
    if len(members) > MAX_BUNDLE_KEYS:
        raise ValueError(f"the bundle holds {len(members)} keys; at most {MAX_BUNDLE_KEYS} are accepted")
    jwt_keys: list[Key] = []
    authorities: list[x509.Certificate] = []
    for index, member in enumerate(members):
        if not isinstance(member, dict) or member.get("kty") not in _KNOWN_KEY_TYPES:
            continue
        use = member.get("use")
        if use not in (_JWT_SVID, _X509_SVID):
            continue
        # `use` names the SVID kind, not a JOSE use (RFC 7517 §4.2 knows only sig and enc).
        jwk = {name: value for name, value in member.items() if name != "use"}
        try:
            key = public_key_from_jwk(jwk)
        except JWKError as exc:
            raise ValueError(f"bundle key {index} {exc}") from None
        if use == _X509_SVID:
            authorities.append(_authority(member, index))
        else:
            jwt_keys.append(key)
    hint = document.get("spiffe_refresh_hint")
    if hint is not None and (isinstance(hint, bool) or not isinstance(hint, int) or hint < 0):
        raise ValueError("the bundle's spiffe_refresh_hint is not a number of seconds")
    return SpiffeBundle(tuple(jwt_keys), tuple(authorities), hint)
