"""A client's JWK Set as registered or fetched (RFC 7517 §5, RFC 7591 §2, SPEC §9), bounded.

`parse_jwks` is the one check every set passes, whether it arrives at registration, through the
admin API or the CLI, or from a `jwks_uri` fetch: at most `MAX_KEYS` members (counted before any
is decoded), each a public key within certbound.keypolicy with a consistent `x5c`
(certbound.jose.public_key_from_jwk); exact duplicates (the same key under the same kid) are
dropped; two keys of one type may not share a kid, so a kid and an algorithm always name at most
one key and an assertion is verified against that key alone (certbound.clientauth.assertion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from joserfc.jwk import Key

from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError
from certbound.jose import JWKError, public_key_from_jwk
from certbound.jwks.addresses import validate_jwks_uri
from certbound.pki.spki import public_key_der

__all__ = ["MAX_KEYS", "parse_jwks", "require_key_source"]

#: Members a JWK Set may hold. Clients rotate through two or three keys; 16 leaves room for
#: several algorithms and overlapping rotations while bounding what one client makes us decode.
MAX_KEYS = 16


def parse_jwks(value: object) -> list[Key]:
    """Decode a JWK Set of public keys; raise InvalidClientMetadataError naming the problem."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise InvalidClientMetadataError('jwks is not a JWK Set (a JSON object with a "keys" array)')
    members: list[object] = value["keys"]
    if len(members) > MAX_KEYS:
        raise InvalidClientMetadataError(f"jwks holds {len(members)} keys; at most {MAX_KEYS} are accepted")
    keys: list[Key] = []
    seen: dict[tuple[str, str | None], int] = {}  # (key type, kid) -> index of the first key
    unique: set[tuple[bytes | None, str | None]] = set()
    for index, member in enumerate(members):
        try:
            key = public_key_from_jwk(member)
        except JWKError as exc:
            raise InvalidClientMetadataError(f"jwks key {index} {exc}") from None
        identity = (public_key_der(key.public_key), key.kid)
        if identity in unique:
            continue  # the same key under the same kid: a copy, not a second key
        unique.add(identity)
        if key.kid is not None:
            first = seen.setdefault((key.key_type, key.kid), index)
            if first != index:
                raise InvalidClientMetadataError(
                    f"jwks keys {first} and {index} are both {key.key_type} keys with kid {key.kid!r}: "
                    "a kid must name one key"
                )
        keys.append(key)
    if not keys:
        raise InvalidClientMetadataError("jwks holds no keys")
    return keys


def require_key_source(metadata: Mapping[str, Any], settings: Settings) -> None:
    """SPEC §9: exactly one of `jwks` and `jwks_uri`; inline keys parse; the URI is https."""
    has_jwks, has_uri = metadata.get("jwks") is not None, metadata.get("jwks_uri") is not None
    if has_jwks == has_uri:
        which = "both" if has_jwks else "neither"
        raise InvalidClientMetadataError(
            f"jwks: exactly one of jwks and jwks_uri is required ({which} given)"
        )
    if has_jwks:
        parse_jwks(metadata["jwks"])
    else:
        validate_jwks_uri(metadata["jwks_uri"], allow_private=settings.allow_private_fetch)
