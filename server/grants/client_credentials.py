"""The client_credentials grant (RFC 6749 §4.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from certbound.clientauth import AuthenticatedClient
from certbound.context import ServerContext
from certbound.grants.base import certificate_thumbprint_for, granted_scope, token_audience

__all__ = ["ClientCredentialsGrant"]


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    confidential_only: ClassVar[bool] = True

    async def handle(
        self, form: Mapping[str, str], caller: AuthenticatedClient, context: ServerContext
    ) -> dict[str, Any]:
        client = caller.client
        scope = granted_scope(form.get("scope"), client)
        audience = token_audience(form.get("resource"), context.settings.issuer)
        thumbprint = certificate_thumbprint_for(client, caller.certificate)
        issued = await context.tokens.issue(
            client,
            subject=client.client_id,
            scope=scope,
            audience=audience,
            x5t_s256=thumbprint,
            jkt=caller.dpop_jkt,
        )
        return {
            "access_token": issued.access_token,
            "token_type": issued.token_type,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }
