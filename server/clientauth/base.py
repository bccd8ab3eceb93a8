"""The contract every token_endpoint_auth_method implements (OIDC Core §9, RFC 8705 §2)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from certbound.clientauth.credentials import PresentedCredentials
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.models import Client

__all__ = ["ClientAuthMethod"]


class ClientAuthMethod(Protocol):
    #: The registered `token_endpoint_auth_method` value; its facts (the one request shape its
    #: credential travels in...) are certbound.authmethods.METHODS[name].
    name: ClassVar[str]

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        """Return if `presented` proves `client`; raise InvalidClientError otherwise."""

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        """Check (and default) the metadata this method needs at registration time; raise
        InvalidClientMetadataError naming the field. `metadata` may be updated in place."""
