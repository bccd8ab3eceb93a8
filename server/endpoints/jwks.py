"""The server's public signing keys as a JWK Set (RFC 7517 §5)."""

from __future__ import annotations

from aiohttp import web

from certbound.context import CONTEXT
from certbound.endpoints.http import json_response

__all__ = ["jwks_endpoint"]


async def jwks_endpoint(request: web.Request) -> web.Response:
    return json_response(request.app[CONTEXT].keys.jwks, cacheable=True)
