"""Advice on client registrations that are valid but will probably not work as meant (SPEC §3,
§8, issue 10): every front door logs it (certbound.management), and `certbound clients` prints it.

- A chosen secret with characters that some client libraries send unencoded in HTTP Basic: RFC
  6749 §2.3.1 form-encodes client_id and secret before base64 (certbound decodes them so), but
  Authlib and requests send them raw, so `+`, `%`, `:`, spaces and non-ASCII text arrive altered.
- A chosen secret shorter than our generated ones carry entropy for.
- A `tls_client_auth_subject_dn` written in ASN.1 order, as `openssl x509 -subject` prints it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from certbound.pki.dn import looks_reversed

__all__ = ["client_warnings", "log_client_warnings"]

log = logging.getLogger("certbound.clients")

#: Shorter chosen secrets are accepted (8+ characters) but have less entropy than ours (256 bits).
_WEAK_CHOSEN_SECRET = 32
_BASIC_UNSAFE = frozenset("+%: ")


def client_warnings(metadata: Mapping[str, Any], chosen_secret: str | None) -> list[str]:
    """What is worth telling whoever registered `metadata` (with an administrator's secret)."""
    warnings: list[str] = []
    if chosen_secret is not None:
        if len(chosen_secret) < _WEAK_CHOSEN_SECRET:
            warnings.append(f"the chosen client_secret has fewer than {_WEAK_CHOSEN_SECRET} characters")
        unsafe = sorted({char for char in chosen_secret if char in _BASIC_UNSAFE or not char.isascii()})
        if unsafe and metadata.get("token_endpoint_auth_method") == "client_secret_basic":
            shown = " ".join("space" if char == " " else repr(char) for char in unsafe)
            warnings.append(
                f"the chosen client_secret contains {shown}: Authlib and requests send Basic "
                "credentials without the form-encoding RFC 6749 §2.3.1 requires, so those clients "
                "will fail to authenticate (curl -u and RFC-conforming clients work); "
                "a generated secret avoids this"
            )
    subject_dn = metadata.get("tls_client_auth_subject_dn")
    if isinstance(subject_dn, str) and looks_reversed(subject_dn):
        warnings.append(
            f"tls_client_auth_subject_dn {subject_dn!r} starts with C= or DC= and ends with CN=: "
            "that is the order `openssl x509 -subject` prints, the reverse of RFC 4514's, so it will "
            "not match a certificate whose subject reads that way; if so, register the DN that "
            "`openssl x509 -noout -subject -nameopt RFC2253` prints"
        )
    return warnings


def log_client_warnings(client_id: str, metadata: Mapping[str, Any], chosen_secret: str | None) -> None:
    for warning in client_warnings(metadata, chosen_secret):
        log.warning("client %s: %s", client_id, warning)
