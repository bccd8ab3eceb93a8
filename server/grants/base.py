"""The contract of a grant handler (RFC 6749 §4) and the steps grants share: scope and binding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from certbound.clientauth import AuthenticatedClient
from certbound.context import ServerContext
from certbound.errors import InvalidRequestError, InvalidScopeError
from certbound.models import Client
from certbound.tls.peer import PeerCertificates

__all__ = ["Grant", "certificate_thumbprint_for", "granted_scope", "token_audience"]


class Grant(Protocol):
    grant_type: ClassVar[str]
    #: Whether the grant needs a confidential client (RFC 6749 §4.4.2).
    confidential_only: ClassVar[bool]

    async def handle(
        self, form: Mapping[str, str], caller: AuthenticatedClient, context: ServerContext
    ) -> dict[str, Any]:
        """The token response body (RFC 6749 §5.1)."""


def granted_scope(requested: str | None, client: Client) -> str:
    """RFC 6749 §3.3: no `scope` means the client's whole scope; anything outside it is refused."""
    allowed = client.scopes
    if requested is None:
        return " ".join(allowed)
    wanted = requested.split()
    if not wanted:
        raise InvalidScopeError("scope is empty")
    outside = [scope for scope in wanted if scope not in allowed]
    if outside:
        raise InvalidScopeError(f"scope not allowed for this client: {' '.join(outside)}")
    return " ".join(dict.fromkeys(wanted))


def token_audience(resource: str | None, issuer: str) -> str:
    """RFC 8707 §2: `resource` is an absolute URI without a fragment; default audience: issuer."""
    if resource is None:
        return issuer
    scheme, colon, rest = resource.partition(":")
    if not colon or not scheme.isascii() or not scheme[:1].isalpha() or not rest or "#" in resource:
        raise InvalidRequestError("resource must be an absolute URI without a fragment")
    return resource


def certificate_thumbprint_for(client: Client, certificate: PeerCertificates | None) -> str | None:
    """RFC 8705 §3: the `x5t#S256` to bind, if and only if the client is certificate-bound.

    A bound client without a certificate is refused rather than given an unbound token (SPEC §8).
    """
    if not client.certificate_bound:
        return None
    if certificate is None:
        raise InvalidRequestError("this client's tokens are certificate-bound: present a client certificate")
    return certificate.x5t_s256
