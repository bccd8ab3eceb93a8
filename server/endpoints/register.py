"""Dynamic client registration (RFC 7591 §3) and its management protocol (RFC 7592 §2).

`POST /register` creates a client and answers 201 with the client information, a registration
access token and the client configuration endpoint `/register/{client_id}`, where the holder of
that token reads (GET), replaces (PUT) or deletes (DELETE) the registration.

Modes (`--registration`, default `closed`, SPEC §3): `open`; `token`, where registering needs
`Authorization: Bearer <initial access token>` (RFC 7591 §3: the server MAY require one); `closed`,
where registration answers 403 `access_denied`: the endpoint exists (discovery advertises it and
RFC 7592 management of existing clients keeps working) but the server refuses to create clients,
which is what 403 says (RFC 9110 §15.5.4); a 404 would claim the endpoint is not there.

A dynamically registered client holds at most --registration-scopes (default: all of --scopes), and
those when it asks for none; an RFC 7592 update cannot widen it beyond them (certbound.clientmeta
ScopeLimit). Only an administrator (admin API, CLI) gives more.

An unknown client and a wrong token look the same at the configuration endpoint: 401
`invalid_token` (RFC 7592 §2.1), so the endpoint does not tell which client_ids exist.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from certbound.accesslog import note
from certbound.config import Settings
from certbound.context import CONTEXT
from certbound.endpoints.bearer import StaticToken, require_bearer_token
from certbound.endpoints.http import NO_STORE, json_response, read_json_object
from certbound.errors import (
    AccessDeniedError,
    InvalidClientMetadataError,
    InvalidRequestError,
    InvalidTokenError,
)
from certbound.management import ClientManager, client_information
from certbound.models import Client

__all__ = ["RegistrationEndpoints", "registration_client_uri"]

#: RFC 7592 §2.2: an update request MUST NOT carry these (the server issues them).
_NOT_IN_UPDATE = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)
_BAD_TOKEN = "the registration access token is not valid for this client"


def registration_client_uri(settings: Settings, client_id: str) -> str:
    """RFC 7592 §3: the client configuration endpoint of `client_id`."""
    return f"{settings.issuer}/register/{quote(client_id, safe='')}"


class RegistrationEndpoints:
    """The handlers, holding only the digest of the initial access token (token mode)."""

    def __init__(self, settings: Settings) -> None:
        self._mode = settings.registration
        token = settings.registration_token
        self._initial_token = StaticToken(token) if token else None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/register", self.register),
            web.get("/register/{client_id}", self.read),
            web.put("/register/{client_id}", self.update),
            web.delete("/register/{client_id}", self.delete),
        ]

    def _require_registration_allowed(self, request: web.Request) -> None:
        if self._mode == "open":
            return
        if self._mode == "closed" or self._initial_token is None:
            raise AccessDeniedError("dynamic client registration is closed on this server")
        if not self._initial_token.matches(require_bearer_token(request)):
            raise InvalidTokenError("the initial access token is not valid")

    async def register(self, request: web.Request) -> web.Response:
        """RFC 7591 §3.1: register; §3.2.1: 201 with the client information."""
        self._require_registration_allowed(request)
        context = request.app[CONTEXT]
        metadata = await read_json_object(request, error=InvalidClientMetadataError)
        # client_id and client_secret in the request are the server's to choose: normalize drops them.
        created = await ClientManager.for_context(context).create(metadata, dynamic=True)
        note(
            request,
            registered_client_id=created.client.client_id,
            registered_auth_method=created.client.auth_method,
        )
        body = client_information(
            created.client,
            secret=created.secret,
            registration_token=created.registration_token,
            registration_client_uri=registration_client_uri(context.settings, created.client.client_id),
        )
        return json_response(body, status=201)

    async def _authorized_client(self, request: web.Request) -> tuple[ClientManager, Client, str]:
        """RFC 7592 §2: the client named in the path, if the bearer token is its registration
        access token; otherwise 401 invalid_token whether or not the client exists."""
        token = require_bearer_token(request)
        manager = ClientManager.for_context(request.app[CONTEXT])
        client = await manager.get(request.match_info["client_id"])
        if not manager.verify_registration_token(client, token) or client is None:
            raise InvalidTokenError(_BAD_TOKEN)
        return manager, client, token

    async def read(self, request: web.Request) -> web.Response:
        """RFC 7592 §2.1: the current client information. The token is not rotated on a read, so
        the response repeats the one presented (RFC 7592 §3 lists it in every response)."""
        _, client, token = await self._authorized_client(request)
        return json_response(self._information(request, client, None, token))

    async def update(self, request: web.Request) -> web.Response:
        """RFC 7592 §2.2: full replacement of the metadata; `?rotate_secret=true` also issues a new
        secret (the server MAY, §2.2). A new registration access token is issued every time."""
        manager, client, _ = await self._authorized_client(request)
        body = await read_json_object(request, error=InvalidClientMetadataError)
        await self._check_update_request(manager, client, body)
        rotate = request.query.get("rotate_secret", "false").lower() in ("true", "1")
        updated = await manager.replace(client, body, rotate_secret=rotate, dynamic=True)
        if updated is None:
            raise InvalidTokenError(_BAD_TOKEN)
        return json_response(
            self._information(request, updated.client, updated.secret, updated.registration_token)
        )

    async def delete(self, request: web.Request) -> web.Response:
        """RFC 7592 §2.3: 204; the client_id, secret, registration token and the client's
        reference tokens stop working."""
        manager, client, _ = await self._authorized_client(request)
        await manager.delete(client.client_id)
        return web.Response(status=204, headers=NO_STORE)

    @staticmethod
    async def _check_update_request(manager: ClientManager, client: Client, body: dict[str, Any]) -> None:
        present = [name for name in _NOT_IN_UPDATE if name in body]
        if present:
            raise InvalidRequestError(f"an update request must not include {', '.join(present)}")
        if body.get("client_id") != client.client_id:
            raise InvalidRequestError("client_id in the body must be the client's current client_id")
        secret = body.get("client_secret")
        if "client_secret" in body and not (
            isinstance(secret, str) and await manager.verify_client_secret(client, secret)
        ):
            # RFC 7592 §2.2: a client MUST NOT choose its own secret; it may only repeat it.
            raise InvalidRequestError("client_secret does not match the current client secret")

    @staticmethod
    def _information(
        request: web.Request, client: Client, secret: str | None, token: str | None
    ) -> dict[str, Any]:
        settings = request.app[CONTEXT].settings
        return client_information(
            client,
            secret=secret,
            registration_token=token,
            registration_client_uri=registration_client_uri(settings, client.client_id),
        )
