"""The admin REST API: client and signing-key management for operators (SPEC §4), documented by
OpenAPI 3.1.

Every operation needs `Authorization: Bearer <admin token>` (compared by digest in constant time;
only the digest is kept). With no admin token configured every path under /admin answers 404
`not_found`: the API does not exist on such a server, and a 403 would advertise a door that no
credential opens. Bodies are RFC 7591 metadata; an administrator may also choose `client_id` and
`client_secret`. Reading a client that signs its own assertions also shows how many were accepted
only because of `--assertion-audience legacy`, and when the last one was (certbound.legacyaudience),
so an operator knows which clients must change before going strict.
The same ClientManager serves registration, this API and the CLI; the signing
keys are the server's own KeyRing (a rotation here is published by every node within its refresh
interval, as one made with `certbound keys rotate`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from certbound.accesslog import note
from certbound.clientmeta import KNOWN_AUTH_METHODS
from certbound.config import Settings
from certbound.context import CONTEXT, ServerContext
from certbound.endpoints.bearer import StaticToken, require_bearer_token
from certbound.endpoints.http import NO_STORE, json_response, read_json_object
from certbound.endpoints.openapi import admin_openapi
from certbound.errors import (
    InvalidClientMetadataError,
    InvalidRequestError,
    InvalidTokenError,
    NotFoundError,
)
from certbound.management import ClientManager, client_information
from certbound.models import Client

__all__ = ["AdminAPI"]

_DEFAULT_LIMIT = 100
_MAX_LIMIT = 500


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidClientMetadataError(f"{name} must be a string")
    return value


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return _DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise InvalidRequestError(f"limit must be an integer from 1 to {_MAX_LIMIT}")
    return int(raw)


class AdminAPI:
    """The handlers, holding only the admin token's digest."""

    def __init__(self, settings: Settings) -> None:
        self._token = StaticToken(settings.admin_token) if settings.admin_token else None
        self._openapi = admin_openapi(settings.issuer)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/openapi.json", self.openapi),
            web.get("/admin/clients", self.list_clients),
            web.post("/admin/clients", self.create_client),
            web.get("/admin/clients/{client_id}", self.get_client),
            web.put("/admin/clients/{client_id}", self.replace_client),
            web.delete("/admin/clients/{client_id}", self.delete_client),
            web.post("/admin/clients/{client_id}/rotate-secret", self.rotate_secret),
            web.get("/admin/keys", self.list_keys),
            web.post("/admin/keys/rotate", self.rotate_key),
        ]

    def _require_enabled(self) -> StaticToken:
        if self._token is None:
            raise NotFoundError("the admin API is disabled: no admin token is configured")
        return self._token

    def _admin_context(self, request: web.Request) -> ServerContext:
        if not self._require_enabled().matches(require_bearer_token(request)):
            raise InvalidTokenError("the admin token is not valid")
        return request.app[CONTEXT]

    def _authorize(self, request: web.Request) -> ClientManager:
        return ClientManager.for_context(self._admin_context(request))

    @staticmethod
    async def _client(manager: ClientManager, request: web.Request) -> Client:
        client_id = request.match_info["client_id"]
        client = await manager.get(client_id)
        if client is None:
            raise NotFoundError(f"no client {client_id}")
        return client

    async def openapi(self, request: web.Request) -> web.Response:
        """Public while the API is enabled: it describes the API and holds no data."""
        self._require_enabled()
        return json_response(self._openapi, cacheable=True)

    async def list_clients(self, request: web.Request) -> web.Response:
        manager = self._authorize(request)
        limit = _limit(request)
        method = request.query.get("token_endpoint_auth_method")
        if method is not None and method not in KNOWN_AUTH_METHODS:
            raise InvalidRequestError(f"token_endpoint_auth_method {method!r} is not a known method")
        # One extra row tells whether another page exists, so the last page says next: null.
        page = await manager.list_clients(
            limit=limit + 1, after=request.query.get("after"), auth_method=method
        )
        more = len(page) > limit
        page = page[:limit]
        return json_response(
            {"clients": await manager.admin_views(page), "next": page[-1].client_id if more else None}
        )

    async def create_client(self, request: web.Request) -> web.Response:
        manager = self._authorize(request)
        body = await read_json_object(request, error=InvalidClientMetadataError)
        created = await manager.create(
            body,
            client_id=_optional_string(body, "client_id"),
            secret=_optional_string(body, "client_secret"),
        )
        note(
            request,
            registered_client_id=created.client.client_id,
            registered_auth_method=created.client.auth_method,
        )
        response = json_response(client_information(created.client, secret=created.secret), status=201)
        response.headers["Location"] = f"/admin/clients/{quote(created.client.client_id, safe='')}"
        return response

    async def get_client(self, request: web.Request) -> web.Response:
        manager = self._authorize(request)
        (view,) = await manager.admin_views([await self._client(manager, request)])
        return json_response(view)

    async def replace_client(self, request: web.Request) -> web.Response:
        manager = self._authorize(request)
        client = await self._client(manager, request)
        body = await read_json_object(request, error=InvalidClientMetadataError)
        client_id = _optional_string(body, "client_id")
        if client_id is not None and client_id != client.client_id:
            raise InvalidRequestError("client_id in the body differs from the one in the path")
        updated = await manager.replace(client, body, secret=_optional_string(body, "client_secret"))
        if updated is None:
            raise NotFoundError(f"no client {client.client_id}")
        return json_response(client_information(updated.client, secret=updated.secret))

    async def delete_client(self, request: web.Request) -> web.Response:
        manager = self._authorize(request)
        client_id = request.match_info["client_id"]
        if not await manager.delete(client_id):
            raise NotFoundError(f"no client {client_id}")
        return web.Response(status=204, headers=NO_STORE)

    async def rotate_secret(self, request: web.Request) -> web.Response:
        manager = self._authorize(request)
        client = await self._client(manager, request)
        rotated = await manager.rotate_secret(client)
        if rotated is None:
            raise NotFoundError(f"no client {client.client_id}")
        return json_response(client_information(rotated.client, secret=rotated.secret))

    async def list_keys(self, request: web.Request) -> web.Response:
        keys = self._admin_context(request).keys
        return json_response({"keys": await keys.describe()})

    async def rotate_key(self, request: web.Request) -> web.Response:
        """A new active key; the others are retired (still published until their tokens expire)."""
        keys = self._admin_context(request).keys
        return json_response(keys.information(await keys.rotate()))
