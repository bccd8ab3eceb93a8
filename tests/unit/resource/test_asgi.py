"""certbound.resource's ASGI middleware, driven with scripted ASGI scopes and messages: RFC 6750
answers, the client certificate from the ASGI TLS extension or a trusted proxy's header, WebSocket
handshakes, lifespan. (Under a real ASGI server: tests/e2e/test_resource_stacks.py.)"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from multidict import CIMultiDict

from certbound.dpop import DPoPKey
from certbound.resource import (
    BearerTokenMiddleware,
    TokenVerifier,
    TrustedProxies,
    VerifiedToken,
    certificate_thumbprint,
    get_verified_token,
)
from certbound.resource.asgi import Message, Scope, request_url
from tests.unit.resource.conftest import ScriptedAS, client_certificate

CERTIFICATE = client_certificate()
OTHER = client_certificate()


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode("ascii")


def forwarded(certificate: x509.Certificate) -> tuple[bytes, bytes]:
    return b"client-cert", b":" + base64.b64encode(certificate.public_bytes(Encoding.DER)) + b":"


class App:
    """The protected ASGI app: answers 200 with the verified client_id; records what it saw."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "http":
            body = get_verified_token(scope).client_id.encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})


async def call(middleware: BearerTokenMiddleware, scope: Scope) -> tuple[int, dict[str, str], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    start, body = sent
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, body["body"]


def http_scope(
    token: str | None,
    *extra_headers: tuple[bytes, bytes],
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    chain: list[str] | None = None,
) -> Scope:
    headers = [(b"host", b"api.example"), *extra_headers]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/resource",
        "headers": headers,
        "client": client,
        "extensions": {},
    }
    if chain is not None:
        scope["extensions"]["tls"] = {"client_cert_chain": chain, "server_cert": None}
    return scope


def bound(scripted: ScriptedAS) -> str:
    return scripted.token(cnf={"x5t#S256": certificate_thumbprint(CERTIFICATE)})


async def test_no_token_is_a_bare_challenge(verifier: TokenVerifier) -> None:
    app = App()
    status, headers, body = await call(BearerTokenMiddleware(app, verifier), http_scope(None))
    assert (status, headers["www-authenticate"], body) == (401, "Bearer", b"")
    assert headers["content-length"] == "0"
    assert headers["cache-control"] == "no-store"
    assert app.scopes == []


async def test_valid_token_reaches_the_app_with_the_verified_token(authorization_server, verifier) -> None:
    app = App()
    status, _, body = await call(
        BearerTokenMiddleware(app, verifier), http_scope(authorization_server.token())
    )
    assert (status, body) == (200, b"client-1")
    assert isinstance(get_verified_token(app.scopes[0]), VerifiedToken)


async def test_invalid_token_is_invalid_token(authorization_server, verifier) -> None:
    token = authorization_server.token(aud="https://elsewhere.example")
    status, headers, body = await call(BearerTokenMiddleware(App(), verifier), http_scope(token))
    assert status == 401
    assert headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert headers["content-type"] == "application/json"
    assert b"another audience" in body


@pytest.mark.parametrize(
    ("chain", "status"),
    [([pem(CERTIFICATE)], 200), ([pem(OTHER), pem(CERTIFICATE)], 401), ([], 401), (None, 401)],
    ids=["right", "another", "empty-chain", "no-tls-extension"],
)
async def test_certificate_from_the_tls_extension(
    authorization_server, verifier, chain: list[str] | None, status: int
) -> None:
    scope = http_scope(bound(authorization_server), chain=chain)
    assert (await call(BearerTokenMiddleware(App(), verifier), scope))[0] == status


async def test_header_from_a_trusted_proxy_wins_over_the_tls_extension(
    authorization_server, verifier
) -> None:
    middleware = BearerTokenMiddleware(App(), verifier, trusted_proxies=TrustedProxies(["127.0.0.1"]))
    token = bound(authorization_server)
    assert (await call(middleware, http_scope(token, forwarded(CERTIFICATE), chain=[pem(OTHER)])))[0] == 200
    # From a trusted proxy, no header means no certificate (the TLS peer is the proxy).
    assert (await call(middleware, http_scope(token, chain=[pem(CERTIFICATE)])))[0] == 401


@pytest.mark.parametrize("client", [("192.0.2.1", 50000), None], ids=["elsewhere", "no-client"])
async def test_header_from_an_untrusted_peer_is_ignored(
    authorization_server, verifier, client: tuple[str, int] | None
) -> None:
    middleware = BearerTokenMiddleware(App(), verifier, trusted_proxies=TrustedProxies(["127.0.0.1"]))
    scope = http_scope(bound(authorization_server), forwarded(CERTIFICATE), client=client)
    assert (await call(middleware, scope))[0] == 401


async def test_pinned_proxy_must_present_its_certificate(authorization_server, verifier) -> None:
    pin = hashlib.sha256(OTHER.public_bytes(Encoding.DER)).hexdigest()
    proxies = TrustedProxies(["127.0.0.1"], cert_sha256=[pin])
    middleware = BearerTokenMiddleware(App(), verifier, trusted_proxies=proxies)
    token = bound(authorization_server)
    assert (await call(middleware, http_scope(token, forwarded(CERTIFICATE), chain=[pem(OTHER)])))[0] == 200
    # The server gives no TLS extension (uvicorn, hypercorn): a pin can never be checked.
    assert (await call(middleware, http_scope(token, forwarded(CERTIFICATE))))[0] == 401


async def test_malformed_header_from_a_trusted_proxy_is_400(authorization_server, verifier) -> None:
    middleware = BearerTokenMiddleware(App(), verifier, trusted_proxies=TrustedProxies(["127.0.0.1"]))
    scope = http_scope(bound(authorization_server), (b"client-cert", b"garbage"))
    status, _, body = await call(middleware, scope)
    assert status == 400
    assert json.loads(body)["error"] == "invalid_request"


async def test_unparsable_tls_extension_certificate_is_400(authorization_server, verifier) -> None:
    scope = http_scope(bound(authorization_server), chain=["-----BEGIN CERTIFICATE-----\nAAAA\n"])
    status, _, body = await call(BearerTokenMiddleware(App(), verifier), scope)
    assert (status, json.loads(body)["error"]) == (400, "invalid_request")


async def test_refused_websocket_handshake_is_closed(verifier) -> None:
    app = App()
    sent: list[Message] = []
    received = mock.AsyncMock(return_value={"type": "websocket.connect"})

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {**http_scope(None), "type": "websocket"}
    await BearerTokenMiddleware(app, verifier)(scope, received, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert app.scopes == []


async def test_accepted_websocket_handshake_reaches_the_app(authorization_server, verifier) -> None:
    app = App()
    scope = {**http_scope(authorization_server.token()), "type": "websocket"}
    await BearerTokenMiddleware(app, verifier)(scope, mock.AsyncMock(), mock.AsyncMock())
    assert get_verified_token(app.scopes[0]).client_id == "client-1"


async def test_lifespan_shutdown_closes_the_verifier(verifier) -> None:
    async def lifespan_app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with mock.patch.object(verifier, "close", mock.AsyncMock()) as close:
        await BearerTokenMiddleware(lifespan_app, verifier)({"type": "lifespan"}, mock.AsyncMock(), send)
    close.assert_awaited_once()
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_no_verified_token_without_the_middleware() -> None:
    with pytest.raises(LookupError, match="BearerTokenMiddleware"):
        get_verified_token({"type": "http"})


# DPoP (RFC 9449 §7.1)
def dpop_scope(token: str, proof: str | None, **scope: Any) -> Scope:
    built = http_scope(None, (b"authorization", f"DPoP {token}".encode()))
    if proof is not None:
        built["headers"].append((b"dpop", proof.encode()))
    built.update(scheme="https", **scope)
    return built


async def test_a_dpop_bound_token_with_its_proof_passes(authorization_server, verifier) -> None:
    key = DPoPKey()
    token = authorization_server.token(cnf={"jkt": key.jkt})
    app = App()
    proof = key.proof("GET", "https://api.example/resource", access_token=token)
    status, _, body = await call(BearerTokenMiddleware(app, verifier), dpop_scope(token, proof))
    assert (status, body) == (200, b"client-1")
    assert get_verified_token(app.scopes[0]).cnf == {"jkt": key.jkt}
    # Twin: the proof names another URL than the request's.
    other = key.proof("GET", "https://api.example/other", access_token=token)
    status, headers, body = await call(BearerTokenMiddleware(app, verifier), dpop_scope(token, other))
    assert status == 401
    assert json.loads(body)["error"] == "invalid_dpop_proof"
    assert headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')


@pytest.mark.parametrize(
    ("scope", "url"),
    [
        (
            {"scheme": "https", "path": "/a b", "headers": [(b"host", b"api.example:8443")]},
            "https://api.example:8443/a%20b",
        ),
        (
            {"scheme": "https", "path": "/x", "raw_path": b"/%78", "headers": [(b"host", b"h")]},
            "https://h/%78",
        ),
        ({"scheme": "wss", "path": "/ws", "headers": [(b"host", b"h")]}, "https://h/ws"),
        (
            {"scheme": "http", "path": "/x", "headers": [], "server": ("10.0.0.1", 8080)},
            "http://10.0.0.1:8080/x",
        ),
    ],
)
def test_the_request_url_is_what_the_client_sent(scope: Scope, url: str) -> None:
    headers = CIMultiDict((name.decode(), value.decode()) for name, value in scope["headers"])
    assert request_url(scope, headers) == url
