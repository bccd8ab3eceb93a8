"""What a request presents to authenticate its client (RFC 6749 §2.3, RFC 7523 §2.2, RFC 8705 §2).

This module only reads the request's shape: which mechanism it uses and which client it names.
It refuses requests that use two mechanisms (SPEC §6) but verifies nothing. Everything it can
refuse depends on the request alone, so it runs before the client is looked up: a malformed
credential is described the same way whether or not the client exists (certbound.reasons).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from certbound.authmethods import Mechanism
from certbound.clientauth.jwsparse import ASSERTION_TYPES, ParsedAssertion, parse_assertion
from certbound.errors import InvalidClientError, InvalidRequestError
from certbound.reasons import Reason
from certbound.tls.peer import PeerCertificates

__all__ = ["Mechanism", "PresentedCredentials", "read_credentials"]


@dataclass(frozen=True, slots=True)
class PresentedCredentials:
    client_id: str
    mechanism: Mechanism
    secret: str | None
    #: The client_assertion, split and decoded (not yet verified).
    assertion: ParsedAssertion | None
    certificate: PeerCertificates | None
    #: The client_assertion_type (Mechanism.ASSERTION only).
    assertion_type: str | None = None
    #: Whether the request named its client (client_id in the body, or HTTP Basic); False when the
    #: client_id was taken from the assertion's `sub`.
    client_id_named: bool = True


def _parse_basic(header: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: base64 of form-urlencoded client_id ":" form-urlencoded secret."""
    try:
        decoded = binascii.a2b_base64(header.encode("ascii"), strict_mode=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidClientError(
            "malformed HTTP Basic credentials: not base64 of UTF-8 text", reason=Reason.MALFORMED_CREDENTIALS
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise InvalidClientError(
            "malformed HTTP Basic credentials: expected client_id:secret", reason=Reason.MALFORMED_CREDENTIALS
        )
    return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")


def _read_assertion(assertion: str | None, assertion_type: str | None) -> tuple[ParsedAssertion, str]:
    if assertion is None:
        raise InvalidClientError(
            "client_assertion_type without client_assertion", reason=Reason.MALFORMED_CREDENTIALS
        )
    if assertion_type is None or assertion_type not in ASSERTION_TYPES:
        raise InvalidClientError(
            f"client_assertion_type must be one of {', '.join(ASSERTION_TYPES)}",
            reason=Reason.ASSERTION_TYPE_UNSUPPORTED,
        )
    return parse_assertion(assertion, assertion_type), assertion_type


def read_credentials(
    form: Mapping[str, str], authorization: str | None, certificate: PeerCertificates | None
) -> PresentedCredentials:
    basic: tuple[str, str] | None = None
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                basic = _parse_basic(value.strip())
            except UnicodeError:
                raise InvalidClientError(
                    "malformed HTTP Basic credentials: bad percent-encoding",
                    reason=Reason.MALFORMED_CREDENTIALS,
                ) from None
    secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    assertion_type = form.get("client_assertion_type")
    used = [
        mechanism
        for mechanism, present in (
            (Mechanism.BASIC, basic is not None),
            (Mechanism.POST, secret is not None),
            (Mechanism.ASSERTION, assertion is not None or assertion_type is not None),
        )
        if present
    ]
    if len(used) > 1:
        names = " and ".join(mechanism.value for mechanism in used)
        raise InvalidRequestError(f"more than one client authentication mechanism: {names}")
    mechanism = used[0] if used else Mechanism.CLIENT_ID_ONLY
    form_client_id = form.get("client_id")
    parsed: ParsedAssertion | None = None
    parsed_type: str | None = None

    if basic is not None:
        client_id, secret = basic
        if form_client_id is not None and form_client_id != client_id:
            raise InvalidRequestError("client_id in the body differs from the HTTP Basic client_id")
    elif mechanism is Mechanism.ASSERTION:
        parsed, parsed_type = _read_assertion(assertion, assertion_type)
        # RFC 7523 §3: a client's own assertion names it as `sub`. Whether `sub` must equal a
        # client_id that is also sent is the method's rule: a workload's token names the workload.
        claimed = parsed.claims.get("sub")
        client_id = form_client_id or (claimed if isinstance(claimed, str) else "")
    else:
        client_id = form_client_id or ""
    if not client_id:
        raise InvalidClientError("no client authentication: client_id is missing", reason=Reason.NO_CLIENT_ID)
    named = basic is not None or form_client_id is not None
    return PresentedCredentials(client_id, mechanism, secret, parsed, certificate, parsed_type, named)
