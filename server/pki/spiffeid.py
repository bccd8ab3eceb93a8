"""SPIFFE IDs and trust domain names (SPIFFE-ID specification §2).

`spiffe://<trust domain>/<path>`: the scheme lowercase; the trust domain of lowercase letters,
digits, `.`, `-` and `_`; path segments of letters, digits, `.`, `-` and `_`, none empty, `.` or
`..`; no trailing `/`, query, fragment, port or user information; at most 2048 bytes. Compared as
exact strings: the specification leaves no room for equivalent spellings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SpiffeId", "parse_spiffe_id", "validate_trust_domain"]

_SCHEME = "spiffe://"
_MAX_BYTES = 2048
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    trust_domain: str
    #: The path with its leading `/` ("" for the trust domain itself).
    path: str

    def __str__(self) -> str:
        return f"{_SCHEME}{self.trust_domain}{self.path}"


def validate_trust_domain(name: str) -> str:
    """`name` when it is a trust domain name; ValueError otherwise."""
    if not _TRUST_DOMAIN.fullmatch(name) or len(name) > 255:
        raise ValueError("a trust domain is 1 to 255 lowercase letters, digits, '.', '-' or '_'")
    return name


def parse_spiffe_id(value: object, *, workload: bool = True) -> SpiffeId:
    """The SPIFFE ID `value` spells; ValueError naming the rule it breaks. `workload`: it must have
    a path (an SVID's identity, X509-SVID §5.2), not only name a trust domain."""
    if not isinstance(value, str):
        raise ValueError("a SPIFFE ID is a string")
    if len(value.encode("utf-8")) > _MAX_BYTES:
        raise ValueError(f"a SPIFFE ID has at most {_MAX_BYTES} bytes")
    if not value.startswith(_SCHEME):
        raise ValueError("a SPIFFE ID starts with spiffe://")
    domain, slash, path = value[len(_SCHEME) :].partition("/")
    validate_trust_domain(domain)
    if not slash:
        if workload:
            raise ValueError("a workload's SPIFFE ID has a path after the trust domain")
        return SpiffeId(domain, "")
    for segment in path.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise ValueError(
                "SPIFFE ID path segments are letters, digits, '.', '-' or '_', none empty, '.' or '..'"
            )
    return SpiffeId(domain, "/" + path)
