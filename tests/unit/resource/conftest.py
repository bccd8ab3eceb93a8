"""A scripted authorization server for certbound.resource's unit tests: a small aiohttp app over
trustme TLS on 127.0.0.1 serving metadata, a JWK Set and introspection answers the test sets, and
counting requests. Tokens are signed here with joserfc, independently of the server's key code."""

from __future__ import annotations

import json
import secrets
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from cryptography import x509
from joserfc import jws
from joserfc.jwk import ECKey

from certbound.resource import TokenVerifier


def new_key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)


def public_jwk(key: ECKey) -> dict[str, Any]:
    return {**key.as_dict(private=False), "alg": "ES256", "use": "sig"}


def sign(key: ECKey, claims: dict[str, Any], *, typ: str = "at+jwt", kid: str | None = None) -> str:
    header = {"alg": "ES256", "typ": typ, "kid": kid or key.kid}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])


def client_certificate() -> x509.Certificate:
    pem = trustme.CA().issue_cert("client.example").cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem)


class ScriptedAS:
    """Serves metadata, a JWK Set and introspection answers the test sets; counts requests."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.ca_file = directory / "as-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.key = new_key()
        self.keys = [self.key]
        self.jwks_status = 200
        self.jwks_body: bytes | None = None
        self.metadata_issuer: str | None = None
        self.answer: dict[str, Any] = {"active": False}
        self.introspect_status = 200
        self.authorizations: list[str] = []
        self.hits: Counter[str] = Counter()
        self.issuer = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/introspect", self._introspect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(server_context)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.issuer = f"https://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metadata(self, request: web.Request) -> web.Response:
        self.hits["metadata"] += 1
        return web.json_response(
            {
                "issuer": self.metadata_issuer or self.issuer,
                "jwks_uri": self.issuer + "/jwks",
                "introspection_endpoint": self.issuer + "/introspect",
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.hits["jwks"] += 1
        if self.jwks_body is not None:
            return web.Response(body=self.jwks_body, content_type="application/json")
        return web.json_response({"keys": [public_jwk(key) for key in self.keys]}, status=self.jwks_status)

    async def _introspect(self, request: web.Request) -> web.Response:
        self.hits["introspect"] += 1
        self.authorizations.append(request.headers.get("Authorization", ""))
        form = await request.post()
        assert form["token_type_hint"] == "access_token"
        return web.json_response(self.answer, status=self.introspect_status)

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "client-1",
            "client_id": "client-1",
            "aud": self.issuer,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(8),
            "scope": "read write",
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, *, key: ECKey | None = None, typ: str = "at+jwt", **changes: Any) -> str:
        return sign(key or self.key, self.claims(**changes), typ=typ)

    def active_answer(self, **changes: Any) -> dict[str, Any]:
        return {"active": True, "token_type": "Bearer", **self.claims(**changes)}


@pytest.fixture
async def authorization_server(tmp_path: Path) -> AsyncIterator[ScriptedAS]:
    scripted = ScriptedAS(tmp_path)
    await scripted.start()
    yield scripted
    await scripted.stop()


@pytest.fixture
async def verifier(authorization_server: ScriptedAS) -> AsyncIterator[TokenVerifier]:
    async with TokenVerifier(
        issuer=authorization_server.issuer, ca_file=authorization_server.ca_file, clock_skew=60
    ) as built:
        yield built
