"""ASGI glue for certbound.resource (FastAPI, Starlette or any ASGI app; RFC 6750 §2.1, §3).

    app = BearerTokenMiddleware(api, verifier, trusted_proxies=None)

Every HTTP request and WebSocket handshake that reaches `api` carries a verified token, found with
`get_verified_token(scope)` (Starlette/FastAPI: `get_verified_token(request.scope)`). Wrap only the
part of an application that needs protection (e.g. a Starlette `Mount`). Refusals are the same as
the aiohttp glue's; a refused WebSocket handshake is closed (the server answers 403).

The client certificate comes from a trusted proxy's header (certbound.proxytrust: the peer is
`scope["client"]`), or from the ASGI TLS extension (`scope["extensions"]["tls"]
["client_cert_chain"]`, its first PEM the leaf) where the server provides it. uvicorn 0.55 and
hypercorn 0.18 do not: behind them, certificates reach the app only through a proxy header, and a
proxy certificate pin (`cert_sha256`) cannot be checked, so pinned headers never count there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from cryptography import x509
from multidict import CIMultiDict

from certbound.dpop import DPOP_HEADER
from certbound.errors import InvalidRequestError
from certbound.proxytrust import TrustedProxies, log_wide_networks
from certbound.resource.guard import Refusal, check_request
from certbound.resource.verifier import DPoPRequest, TokenVerifier, VerifiedToken
from certbound.tls.peer import PeerCertificates

__all__ = [
    "TOKEN_SCOPE_KEY",
    "BearerTokenMiddleware",
    "get_verified_token",
    "request_url",
    "tls_extension_certificate",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key holding the VerifiedToken of a request that passed.
TOKEN_SCOPE_KEY = "certbound.token"
#: RFC 6455 §7.4.1 policy violation: the handshake is refused.
_WS_POLICY_VIOLATION = 1008


def get_verified_token(scope: Scope) -> VerifiedToken:
    """The VerifiedToken BearerTokenMiddleware left in `scope`; LookupError when it did not run."""
    token = scope.get(TOKEN_SCOPE_KEY)
    if not isinstance(token, VerifiedToken):
        raise LookupError("no verified token: is the app wrapped in BearerTokenMiddleware?")
    return token


def tls_extension_certificate(scope: Scope) -> PeerCertificates | None:
    """The leaf of the ASGI TLS extension's `client_cert_chain` (PEM strings), None without one;
    InvalidRequestError when the server handed over something that does not parse."""
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if isinstance(extensions, dict) else None
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    if not chain or not isinstance(chain[0], str):
        return None
    try:
        return PeerCertificates.from_certs(x509.load_pem_x509_certificate(chain[0].encode("ascii")), ())
    except (UnicodeError, ValueError):
        raise InvalidRequestError("the client certificate cannot be parsed") from None


def request_url(scope: Scope, headers: CIMultiDict[str]) -> str:
    """The URL the client sent the request to (ASGI 3 HTTP scope): scheme, Host (else the server's
    address), the raw path as sent when the server gives it. A WebSocket handshake is a GET."""
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    host = headers.get("Host")
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else quote(scope.get("path", "/"))
    return f"{scheme}://{host}{path}"


def _headers(scope: Scope) -> CIMultiDict[str]:
    # ASGI header names and values are bytes; HTTP field values are ISO-8859-1 at most (RFC 9110 §5.5).
    return CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"])


class BearerTokenMiddleware:
    """Let through only requests with a verified access token (and the matching certificate)."""

    def __init__(
        self, app: ASGIApp, verifier: TokenVerifier, *, trusted_proxies: TrustedProxies | None = None
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.trusted_proxies = trusted_proxies
        log_wide_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        result = await check_request(
            self.verifier,
            headers.getall("Authorization", []),
            lambda: self._client_certificate(scope, headers),
            where=f"{scope.get('method', 'WEBSOCKET')} {scope.get('path', '')}",
            dpop_request=lambda: DPoPRequest(
                scope.get("method", "GET"), request_url(scope, headers), headers.getall(DPOP_HEADER, [])
            ),
        )
        if isinstance(result, Refusal):
            await self._refuse(kind, result, receive, send)
            return
        await self.app({**scope, TOKEN_SCOPE_KEY: result}, receive, send)

    def _client_certificate(self, scope: Scope, headers: CIMultiDict[str]) -> PeerCertificates | None:
        own = tls_extension_certificate(scope)
        if self.trusted_proxies is None:
            return own
        client = scope.get("client")
        host = client[0] if isinstance(client, list | tuple) and client else None
        return self.trusted_proxies.client_certificate(host, own, headers)

    async def _refuse(self, kind: str, refusal: Refusal, receive: Receive, send: Send) -> None:
        if kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
            return
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in refusal.headers.items()
        ]
        headers.append((b"content-length", str(len(refusal.body)).encode("ascii")))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": refusal.body})

    def _closing_on_shutdown(self, send: Send) -> Send:
        """The verifier's HTTP session is closed when the server shuts the app down."""

        async def forward(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                await self.verifier.close()
            await send(message)

        return forward
