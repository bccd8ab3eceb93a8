"""Small helpers shared by tests."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from certbound.jose import b64url_decode
from certbound.testing import CertboundTestServer

#: The admin token of the e2e fixture `admin_server_ca`.
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, claims) of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


async def token_status(server: CertboundTestServer, client_id: str, secret: str) -> int:
    """The status of a client_credentials request with client_secret_basic."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic_auth(client_id, secret)},
            ssl=server.client_ssl_context(),
        ) as response,
    ):
        return response.status
