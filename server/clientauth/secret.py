"""client_secret_basic and client_secret_post (RFC 6749 §2.3.1, OIDC Core §9).

Secrets are stored hashed and compared in constant time (certbound.secretcheck); an expired secret
(`client_secret_expires_at`, RFC 7591 §3.2.1) no longer authenticates.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from certbound.clientauth.credentials import PresentedCredentials
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.errors import InvalidClientError
from certbound.models import Client
from certbound.reasons import Reason

__all__ = ["ClientSecretBasic", "ClientSecretPost", "require_valid_secret"]


async def require_valid_secret(presented: str | None, client: Client, context: ServerContext) -> None:
    if client.secret_hash is None:
        raise InvalidClientError("client has no secret", reason=Reason.NO_SECRET)
    if presented is None or not await context.secret_checker.verify(presented, client.secret_hash):
        raise InvalidClientError("the client secret does not match", reason=Reason.BAD_SECRET)
    # Checked after the secret matched, so only its holder learns that it expired.
    if client.secret_expires_at and client.secret_expires_at < time.time():
        raise InvalidClientError("client secret has expired", reason=Reason.SECRET_EXPIRED)


class ClientSecretBasic:
    name: ClassVar[str] = "client_secret_basic"

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        await require_valid_secret(presented.secret, client, context)

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        return None


class ClientSecretPost:
    name: ClassVar[str] = "client_secret_post"

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        await require_valid_secret(presented.secret, client, context)

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        return None
