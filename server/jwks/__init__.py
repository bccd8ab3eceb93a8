"""Client JWK Sets (RFC 7517 §5, RFC 7591 §2): what a set may hold (keyset), where a `jwks_uri`
may point (addresses), fetching it (fetch), and the per-process cache the authentication methods
read keys from (resolver)."""

from __future__ import annotations

from certbound.jwks.addresses import is_forbidden_address, validate_jwks_uri
from certbound.jwks.fetch import FETCH_FAILED, FetchLimits
from certbound.jwks.keyset import MAX_KEYS, parse_jwks, require_key_source
from certbound.jwks.resolver import ClientKeyResolver

__all__ = [
    "FETCH_FAILED",
    "MAX_KEYS",
    "ClientKeyResolver",
    "FetchLimits",
    "is_forbidden_address",
    "parse_jwks",
    "require_key_source",
    "validate_jwks_uri",
]
