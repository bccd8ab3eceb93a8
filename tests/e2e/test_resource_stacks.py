"""certbound.resource on ordinary stacks, in front of a real certbound (issue 10 part 3):
- an aiohttp app served by `aiohttp.web` with a stdlib `ssl.SSLContext` (CERT_OPTIONAL, the client
  CA loaded: what the operator must configure for the stdlib to hand over the certificate);
- the same app behind a TLS-terminating proxy that forwards the certificate (RFC 9440), with and
  without a pin on the proxy's own certificate; the test client plays the proxy from 127.0.0.1;
- a Starlette app wrapped in BearerTokenMiddleware under a real uvicorn, behind such a proxy.
Each time: the bound token with its certificate 200, with another certificate 401, with none 401."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import trustme
import uvicorn
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from certbound.resource import (
    TOKEN_KEY,
    BearerTokenMiddleware,
    TokenVerifier,
    TrustedProxies,
    bearer_required,
    certificate_thumbprint,
    get_verified_token,
    install_token_verifier,
)
from certbound.testing import CertboundTestServer, ReadyClient


def verifier_for(server: CertboundTestServer) -> TokenVerifier:
    return TokenVerifier(issuer=server.issuer, ca_file=server.server_ca_file)


@bearer_required
async def aiohttp_resource(request: web.Request) -> web.Response:
    token = request[TOKEN_KEY]
    return web.json_response({"client_id": token.client_id, "cnf": token.cnf})


def resource_tls(server: CertboundTestServer, client_cas: Sequence[trustme.CA]) -> ssl.SSLContext:
    """The resource server's stdlib TLS: its certificate (from the AS's server CA, which the test
    clients trust), client certificates requested but optional, verified against `client_cas`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.server_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    for ca in client_cas:
        ca.configure_trust(context)
    return context


@asynccontextmanager
async def aiohttp_resource_server(
    server: CertboundTestServer,
    *,
    client_cas: Sequence[trustme.CA] = (),
    trusted_proxies: TrustedProxies | None = None,
) -> AsyncIterator[str]:
    """The app under `aiohttp.web` with a stdlib SSLContext on 127.0.0.1; yields its base URL."""
    app = web.Application()
    install_token_verifier(app, verifier_for(server), trusted_proxies=trusted_proxies)
    app.router.add_get("/resource", aiohttp_resource)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner, "127.0.0.1", 0, ssl_context=resource_tls(server, client_cas or [server.client_ca])
    )
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def get(
    url: str, token: str, headers: dict[str, str] | None = None, *, context: ssl.SSLContext | None = None
) -> tuple[int, Any]:
    """GET /resource with the token (and `headers`), over `context`'s TLS when given."""
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context or False)) as http,
        http.get(url + "/resource", headers=headers) as response,
    ):
        json = response.content_type == "application/json"
        return response.status, await response.json() if json else await response.text()


@pytest.fixture
async def bound(server: CertboundTestServer) -> ReadyClient:
    return await server.new_client(tls_client_certificate_bound_access_tokens=True)


@pytest.fixture
async def thief(server: CertboundTestServer) -> ReadyClient:
    """Another client with a valid certificate from the same client CA."""
    return await server.new_client(certificate=True)


@pytest.fixture
async def anonymous(server: CertboundTestServer) -> ReadyClient:
    return await server.new_client()


def refused(result: tuple[int, Any], description: str) -> bool:
    status, body = result
    return status == 401 and body["error"] == "invalid_token" and description in body["error_description"]


# -- aiohttp.web with a stdlib ssl.SSLContext ------------------------------------------------------


async def test_stdlib_ssl_right_certificate_another_and_none(server, bound, thief, anonymous) -> None:
    token = await bound.fetch_token(scope="read")
    assert bound.certificate is not None
    async with aiohttp_resource_server(server) as url:
        status, body = await get(url, token, context=bound.ssl_context)
        assert (status, body) == (
            200,
            {"client_id": bound.client_id, "cnf": {"x5t#S256": certificate_thumbprint(bound.certificate)}},
        )
        assert refused(await get(url, token, context=thief.ssl_context), "does not match the token's binding")
        assert refused(await get(url, token, context=anonymous.ssl_context), "present it over mutual TLS")
        # Twin of "none": an unbound token needs no certificate.
        assert (await get(url, await anonymous.fetch_token(), context=anonymous.ssl_context))[0] == 200


async def test_stdlib_ssl_refuses_the_handshake_for_a_certificate_of_an_unloaded_ca(server, bound) -> None:
    """The stdlib hands over only certificates it verified: a client CA the resource server did not
    load fails the TLS handshake (the README tells operators to load their clients' CAs)."""
    token = await bound.fetch_token()
    async with aiohttp_resource_server(server, client_cas=[trustme.CA()]) as url:
        with pytest.raises(aiohttp.ClientError):
            await get(url, token, context=bound.ssl_context)


# -- behind a TLS-terminating proxy ----------------------------------------------------------------


def client_cert_header(client: ReadyClient) -> dict[str, str]:
    """What the proxy adds for a client that presented its certificate (RFC 9440 §2.2)."""
    assert client.certificate is not None
    der = client.certificate.public_bytes(Encoding.DER)
    return {"Client-Cert": ":" + base64.b64encode(der).decode("ascii") + ":"}


def proxy_context(server: CertboundTestServer, proxy: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """The proxy's own TLS client: trusts the resource server, presents `proxy` if given."""
    return server.client_ssl_context(proxy)


def fingerprint(leaf: trustme.LeafCert) -> str:
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


async def test_aiohttp_behind_a_trusted_proxy(server, bound, thief) -> None:
    token = await bound.fetch_token()
    proxy = proxy_context(server)
    async with aiohttp_resource_server(server, trusted_proxies=TrustedProxies(["127.0.0.1"])) as url:
        status, body = await get(url, token, client_cert_header(bound), context=proxy)
        assert (status, body["client_id"]) == (200, bound.client_id)
        assert refused(await get(url, token, client_cert_header(thief), context=proxy), "does not match")
        assert refused(await get(url, token, context=proxy), "present it over mutual TLS")


async def test_aiohttp_ignores_the_header_from_an_untrusted_address(server, bound) -> None:
    token = await bound.fetch_token()
    async with aiohttp_resource_server(server, trusted_proxies=TrustedProxies(["10.0.0.0/8"])) as url:
        assert refused(
            await get(url, token, client_cert_header(bound), context=proxy_context(server)), "mutual TLS"
        )


async def test_aiohttp_behind_a_pinned_proxy(server, bound) -> None:
    token = await bound.fetch_token()
    pinned, other = server.issue_client_cert("proxy.example"), server.issue_client_cert("intruder.example")
    proxies = TrustedProxies(["127.0.0.1"], cert_sha256=[fingerprint(pinned)])
    async with aiohttp_resource_server(server, trusted_proxies=proxies) as url:
        header = client_cert_header(bound)
        status, body = await get(url, token, header, context=proxy_context(server, pinned))
        assert (status, body["client_id"]) == (200, bound.client_id)
        # The same trusted address without the pinned certificate is no proxy: its header is ignored.
        assert refused(await get(url, token, header, context=proxy_context(server, other)), "does not match")
        assert refused(
            await get(url, token, header, context=proxy_context(server)), "present it over mutual TLS"
        )


# -- a Starlette app under uvicorn -----------------------------------------------------------------


async def starlette_resource(request: Request) -> JSONResponse:
    token = get_verified_token(request.scope)
    return JSONResponse({"client_id": token.client_id, "cnf": token.cnf})


@asynccontextmanager
async def uvicorn_resource_server(
    server: CertboundTestServer, trusted_proxies: TrustedProxies, *, proxy_headers: bool = False
) -> AsyncIterator[str]:
    """Starlette + BearerTokenMiddleware served by uvicorn on a socket bound to 127.0.0.1:0 first;
    plain HTTP, as from a proxy on the same host. uvicorn's own X-Forwarded-For handling is off
    unless `proxy_headers` (the README explains why)."""
    app = BearerTokenMiddleware(
        Starlette(routes=[Route("/resource", starlette_resource)]),
        verifier_for(server),
        trusted_proxies=trusted_proxies,
    )
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", log_level="warning", proxy_headers=proxy_headers)
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve(sockets=[sock]))
    try:
        while not running.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        running.should_exit = True
        await task
        sock.close()


async def test_asgi_under_uvicorn_behind_a_trusted_proxy(server, bound, thief) -> None:
    token = await bound.fetch_token()
    async with uvicorn_resource_server(server, TrustedProxies(["127.0.0.1"])) as url:
        status, body = await get(url, token, client_cert_header(bound))
        assert (status, body["client_id"]) == (200, bound.client_id)
        assert refused(await get(url, token, client_cert_header(thief)), "does not match")
        assert refused(await get(url, token), "present it over mutual TLS")
        status, body = await get(url, "not a token!")
        assert (status, body["error"]) == (401, "invalid_token")


async def test_asgi_under_uvicorn_ignores_the_header_from_an_untrusted_address(server, bound) -> None:
    token = await bound.fetch_token()
    async with uvicorn_resource_server(server, TrustedProxies(["10.0.0.0/8"])) as url:
        assert refused(await get(url, token, client_cert_header(bound)), "mutual TLS")


async def test_uvicorn_proxy_headers_move_the_peer_address(server, bound) -> None:
    """With uvicorn's default --proxy-headers, X-Forwarded-For from 127.0.0.1 replaces the peer
    address the middleware sees: the trusted proxy is then not recognised (it fails closed)."""
    token = await bound.fetch_token()
    headers = {**client_cert_header(bound), "X-Forwarded-For": "192.0.2.10"}
    async with uvicorn_resource_server(server, TrustedProxies(["127.0.0.1"]), proxy_headers=True) as url:
        assert refused(await get(url, token, headers), "mutual TLS")
    async with uvicorn_resource_server(server, TrustedProxies(["127.0.0.1"])) as url:
        assert (await get(url, token, headers))[0] == 200
