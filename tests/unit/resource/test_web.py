"""certbound.resource's aiohttp glue: the RFC 6750 answers of `bearer_required`, and the client
certificate it checks a binding against, here forwarded by a proxy (the test client on 127.0.0.1;
the TLS sources are covered end to end in tests/e2e/test_resource_stacks.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.serialization import Encoding

from certbound.resource import (
    TOKEN_KEY,
    TokenVerifier,
    TrustedProxies,
    bearer_required,
    certificate_thumbprint,
    install_token_verifier,
)
from tests.unit.resource.conftest import ScriptedAS, client_certificate, new_key, sign

Client = TestClient[web.Request, web.Application]


@bearer_required
async def handler(request: web.Request) -> web.Response:
    return web.json_response({"client_id": request[TOKEN_KEY].client_id, "cnf": request[TOKEN_KEY].cnf})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    clients: list[Client] = []

    async def start(verifier: TokenVerifier, trusted_proxies: TrustedProxies | None = None) -> Client:
        app = web.Application()
        install_token_verifier(app, verifier, trusted_proxies=trusted_proxies)
        app.router.add_get("/", handler)
        client: Client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def protected(serve, verifier: TokenVerifier) -> Client:
    client: Client = await serve(verifier)
    return client


@pytest.mark.parametrize("authorization", [None, "Basic dXNlcjpwYXNz", "Bearer"])
async def test_no_bearer_token_is_a_bare_challenge(protected, authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await protected.get("/", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.read() == b""


async def test_malformed_bearer_token_is_invalid_token(protected) -> None:
    response = await protected.get("/", headers={"Authorization": "Bearer a b"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert (await response.json())["error"] == "invalid_token"


async def test_two_authorization_headers_are_invalid_request(authorization_server, protected) -> None:
    token = authorization_server.token()
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    response = await protected.get("/", headers=headers)
    assert (response.status, (await response.json())["error"]) == (400, "invalid_request")


async def test_valid_bearer_token_reaches_the_handler(authorization_server, protected) -> None:
    response = await protected.get("/", headers={"Authorization": f"bearer {authorization_server.token()}"})
    assert response.status == 200
    assert await response.json() == {"client_id": "client-1", "cnf": None}


async def test_unreachable_authorization_server_is_503(serve) -> None:
    client = await serve(TokenVerifier(issuer="https://127.0.0.1:9", timeout=2))
    response = await client.get("/", headers={"Authorization": f"Bearer {sign(new_key(), {})}"})
    assert response.status == 503
    assert response.headers["Cache-Control"] == "no-store"


CERTIFICATE = client_certificate()
FORWARDED = {"Client-Cert": ":" + base64.b64encode(CERTIFICATE.public_bytes(Encoding.DER)).decode() + ":"}


def bound_token(scripted: ScriptedAS) -> dict[str, str]:
    token = scripted.token(cnf={"x5t#S256": certificate_thumbprint(CERTIFICATE)})
    return {"Authorization": f"Bearer {token}"}


async def test_certificate_forwarded_by_a_trusted_proxy_matches_the_binding(
    authorization_server, serve, verifier
) -> None:
    client = await serve(verifier, TrustedProxies(["127.0.0.1"]))
    response = await client.get("/", headers={**bound_token(authorization_server), **FORWARDED})
    assert response.status == 200, await response.text()
    assert (await response.json())["cnf"] == {"x5t#S256": certificate_thumbprint(CERTIFICATE)}
    # Twin: the proxy forwarded no certificate.
    response = await client.get("/", headers=bound_token(authorization_server))
    assert response.status == 401
    assert "present it over mutual TLS" in (await response.json())["error_description"]


@pytest.mark.parametrize("proxies", [None, TrustedProxies(["10.0.0.0/8"])], ids=["none", "elsewhere"])
async def test_header_from_an_untrusted_peer_is_ignored(
    authorization_server, serve, verifier, proxies: TrustedProxies | None
) -> None:
    client = await serve(verifier, proxies)
    response = await client.get("/", headers={**bound_token(authorization_server), **FORWARDED})
    assert response.status == 401
    assert "present it over mutual TLS" in (await response.json())["error_description"]


async def test_malformed_header_from_a_trusted_proxy_is_invalid_request(
    authorization_server, serve, verifier
) -> None:
    client = await serve(verifier, TrustedProxies(["127.0.0.1"]))
    response = await client.get("/", headers={**bound_token(authorization_server), "Client-Cert": "garbage"})
    assert (response.status, (await response.json())["error"]) == (400, "invalid_request")
