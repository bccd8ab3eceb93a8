"""`none`: a public client identifies itself by client_id only (RFC 7591 §2). It proves nothing,
so grants that need a confidential client refuse it (SPEC §6)."""

from __future__ import annotations

from typing import Any, ClassVar

from certbound.clientauth.credentials import PresentedCredentials
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.models import Client

__all__ = ["NoneAuth"]


class NoneAuth:
    name: ClassVar[str] = "none"

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        return None

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        return None
