"""The registered subject of a tls_client_auth client (RFC 8705 §2.1.2): exactly one of the
subject DN, a SAN field or (SPEC §13) a `spiffe_id`, validated at registration and matched against
the leaf certificate. A `spiffe_id` client's certificate is an X.509-SVID, judged against its trust
domain's bundle (certbound.pki.svid), never against `--client-ca`; the other fields are matched
here, only ever after validation against `--client-ca`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509

from certbound.pki.dn import DNSyntaxError, name_matches, parse_dn
from certbound.pki.san import SAN_KINDS, san_matches, validate_san
from certbound.pki.spiffeid import parse_spiffe_id

__all__ = ["SPIFFE_ID", "SUBJECT_DN", "SUBJECT_FIELDS", "registered_subject", "subject_matches"]

SUBJECT_DN = "tls_client_auth_subject_dn"
#: SPEC §13: the client is a SPIFFE workload presenting an X.509-SVID.
SPIFFE_ID = "spiffe_id"
#: RFC 8705 §2.1.2 (and SPEC §13): the metadata parameters of which a client registers exactly one.
SUBJECT_FIELDS = (SUBJECT_DN, *SAN_KINDS, SPIFFE_ID)


def registered_subject(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """The (field, value) a client registered; ValueError naming the problem when there is none,
    more than one, or the value is malformed."""
    present = [name for name in SUBJECT_FIELDS if metadata.get(name) is not None]
    if len(present) != 1:
        found = ", ".join(present) if present else "none"
        # Named first (SPEC §9, the description starts with the member): the first one found.
        first = present[0] if present else SUBJECT_DN
        raise ValueError(f"{first}: exactly one of {', '.join(SUBJECT_FIELDS)} is required (found: {found})")
    field = present[0]
    value = metadata[field]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string")
    if field == SUBJECT_DN:
        try:
            if not parse_dn(value):
                raise ValueError(f"{field} must not be the empty name")
        except DNSyntaxError as exc:
            raise ValueError(f"{field} is not an RFC 4514 distinguished name: {exc}") from None
    elif field == SPIFFE_ID:
        try:
            parse_spiffe_id(value)
        except ValueError as exc:
            raise ValueError(f"{field} is not a workload's SPIFFE ID: {exc}") from None
    else:
        try:
            validate_san(field, value)
        except ValueError as exc:
            raise ValueError(f"{field} {exc}") from None
    return field, value


def subject_matches(field: str, value: str, leaf: x509.Certificate) -> bool:
    """Whether the leaf certificate carries the registered DN or SAN; never looks at issuers (a
    `spiffe_id` is certbound.pki.svid's business)."""
    if field == SPIFFE_ID:
        raise ValueError("a spiffe_id is matched by certbound.pki.svid, after the bundle's path validation")
    if field == SUBJECT_DN:
        return name_matches(value, leaf.subject)
    return san_matches(field, value, leaf)
