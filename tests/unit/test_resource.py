"""certbound.resource against a scripted authorization server (a small aiohttp app over trustme TLS
on 127.0.0.1): RFC 9068 §4 claim checks, the RFC 8705 binding, key-set and introspection caching,
failures of the AS, and the RFC 6750 answers of bearer_required."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import secrets
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from certbound.errors import InvalidTokenError
from certbound.keys import SigningKey
from certbound.resource import (
    TOKEN_KEY,
    AuthorizationServerError,
    TokenVerifier,
    bearer_required,
    certificate_thumbprint,
    install_token_verifier,
)
from certbound.tls import PeerCertificates
from tests.helpers import sign_jwt


def new_key() -> SigningKey:
    return SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()), "ES256", 0)


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
        return web.json_response({"keys": [key.jwk for key in self.keys]}, status=self.jwks_status)

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

    def token(self, *, key: SigningKey | None = None, typ: str = "at+jwt", **changes: Any) -> str:
        key = key or self.key
        return sign_jwt(key, typ, self.claims(**changes))


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


def client_certificate() -> x509.Certificate:
    pem = trustme.CA().issue_cert("client.example").cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem)


async def test_a_valid_jwt_is_verified(authorization_server, verifier) -> None:
    token = authorization_server.token(aud=["https://other.example", authorization_server.issuer])
    verified = await verifier.verify(token, None)
    assert verified.client_id == verified.subject == "client-1"
    assert verified.scope == "read write"
    assert verified.scopes == {"read", "write"}
    assert verified.audience == ("https://other.example", authorization_server.issuer)
    assert verified.issuer == authorization_server.issuer
    assert verified.cnf is None
    assert verified.claims["jti"] == verified.jti


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        ({"iss": "https://evil.example"}, "another authorization server"),
        ({"aud": "https://other.example"}, "another audience"),
        ({"aud": ["https://a.example", "https://b.example"]}, "another audience"),
        ({"exp": -61}, "expired"),  # exp and nbf are relative to now here
        ({"nbf": 120}, "not valid yet"),
        ({"exp": None}, "has no exp"),
        ({"jti": None}, "has no jti"),
        ({"exp": "tomorrow"}, "exp is not a number"),
        ({"client_id": 7}, "client_id is not a string"),
        ({"cnf": {"jkt": "abc"}}, "not a certificate thumbprint"),
    ],
)
async def test_claims_that_fail(authorization_server, verifier, changes, description) -> None:
    now = int(time.time())
    changes = {
        name: now + value if name in ("exp", "nbf") and isinstance(value, int) else value
        for name, value in changes.items()
    }
    with pytest.raises(InvalidTokenError, match=description):
        await verifier.verify(authorization_server.token(**changes), None)


async def test_expiry_and_nbf_within_the_leeway_pass(authorization_server, verifier) -> None:
    now = int(time.time())
    await verifier.verify(authorization_server.token(exp=now - 30, nbf=now + 30), None)


def forged_with_published_kid(scripted: ScriptedAS) -> str:
    forger = dataclasses.replace(new_key(), kid=scripted.key.kid, jwk=scripted.key.jwk)
    return sign_jwt(forger, "at+jwt", scripted.claims())


@pytest.mark.parametrize(
    ("token_of", "description"),
    [
        (lambda scripted: scripted.token(typ="JWT"), "typ must be at.jwt"),
        (lambda scripted: scripted.token(key=new_key()), "does not publish"),
        (forged_with_published_kid, "signature is invalid"),
        (lambda scripted: "opaque-reference-token", "not a JWT"),
    ],
)
async def test_tokens_that_fail(authorization_server, verifier, token_of, description) -> None:
    with pytest.raises(InvalidTokenError, match=description):
        await verifier.verify(token_of(authorization_server), None)


@pytest.mark.parametrize("as_peer", [False, True], ids=["x509", "PeerCertificates"])
async def test_binding_accepts_the_certificate_and_refuses_others(
    authorization_server, verifier, as_peer
) -> None:
    certificate = client_certificate()
    presented: Any = PeerCertificates.from_certs(certificate, ()) if as_peer else certificate
    token = authorization_server.token(cnf={"x5t#S256": certificate_thumbprint(certificate)})

    verified = await verifier.verify(token, presented)

    assert verified.cnf == {"x5t#S256": certificate_thumbprint(certificate)}
    with pytest.raises(InvalidTokenError, match="does not match"):
        await verifier.verify(token, client_certificate())
    with pytest.raises(InvalidTokenError, match="present it over mutual TLS"):
        await verifier.verify(token, None)


def test_thumbprint_is_base64url_sha256_of_der() -> None:
    certificate = client_certificate()
    digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
    assert certificate_thumbprint(certificate) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_metadata_and_keys_are_fetched_once(authorization_server, verifier) -> None:
    for _ in range(3):
        await verifier.verify(authorization_server.token(), None)
    assert authorization_server.hits == {"metadata": 1, "jwks": 1}


async def test_unknown_kids_refetch_at_most_once_per_cooldown(authorization_server, verifier) -> None:
    await verifier.verify(authorization_server.token(), None)
    for _ in range(5):
        with pytest.raises(InvalidTokenError, match="does not publish"):
            await verifier.verify(authorization_server.token(key=new_key()), None)
    assert authorization_server.hits["jwks"] == 1  # the first fetch is within the cooldown


async def test_a_rotated_key_is_fetched_on_its_first_token(authorization_server) -> None:
    async with TokenVerifier(
        issuer=authorization_server.issuer, ca_file=authorization_server.ca_file, jwks_refresh_cooldown=0
    ) as verifier:
        await verifier.verify(authorization_server.token(), None)
        rotated = new_key()
        authorization_server.keys.append(rotated)
        await verifier.verify(authorization_server.token(key=rotated), None)
        assert authorization_server.hits["jwks"] == 2


async def test_failed_refresh_keeps_the_keys_fetched_before(authorization_server) -> None:
    async with TokenVerifier(
        issuer=authorization_server.issuer,
        ca_file=authorization_server.ca_file,
        jwks_refresh_cooldown=0,
        jwks_max_age=0,
    ) as verifier:
        await verifier.verify(authorization_server.token(), None)
        authorization_server.jwks_status = 500
        await verifier.verify(authorization_server.token(), None)
        assert authorization_server.hits["jwks"] == 2


async def test_concurrent_unknown_kids_share_one_fetch(authorization_server, verifier) -> None:
    tokens = [authorization_server.token(key=new_key()) for _ in range(10)]
    results = await asyncio.gather(
        *(verifier.verify(token, None) for token in tokens), return_exceptions=True
    )
    assert all(isinstance(result, InvalidTokenError) for result in results)
    assert authorization_server.hits["jwks"] == 1


async def test_unreachable_authorization_server(tmp_path) -> None:
    async with TokenVerifier(issuer="https://127.0.0.1:9", timeout=2) as verifier:
        with pytest.raises(AuthorizationServerError):
            await verifier.verify(sign_jwt(new_key(), "at+jwt", {}), None)


async def test_untrusted_authorization_server_certificate(authorization_server) -> None:
    async with TokenVerifier(issuer=authorization_server.issuer) as verifier:
        with pytest.raises(AuthorizationServerError):
            await verifier.verify(authorization_server.token(), None)


async def test_metadata_for_another_issuer_is_refused(authorization_server, verifier) -> None:
    authorization_server.metadata_issuer = "https://evil.example"
    with pytest.raises(AuthorizationServerError, match="another issuer"):
        await verifier.verify(authorization_server.token(), None)


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"keys": "x"}', b"{" + b" " * 300_000 + b"}"])
async def test_unusable_key_sets_are_refused(authorization_server, verifier, body: bytes) -> None:
    authorization_server.jwks_body = body
    with pytest.raises(AuthorizationServerError):
        await verifier.verify(authorization_server.token(), None)


@pytest.fixture
async def introspecting(authorization_server: ScriptedAS) -> AsyncIterator[TokenVerifier]:
    async with TokenVerifier(
        issuer=authorization_server.issuer,
        ca_file=authorization_server.ca_file,
        introspection_client_id="rs:1",
        introspection_client_secret="s3cr%t +ü",
        introspection_cache_ttl=30,
    ) as built:
        yield built


def active_answer(scripted: ScriptedAS, **changes: Any) -> dict[str, Any]:
    return {"active": True, "token_type": "Bearer", **scripted.claims(**changes)}


async def test_introspection_authenticates_with_form_encoded_basic(
    authorization_server, introspecting
) -> None:
    authorization_server.answer = active_answer(authorization_server)
    verified = await introspecting.verify("opaque", None)
    assert verified.client_id == "client-1"
    scheme, _, encoded = authorization_server.authorizations[0].partition(" ")
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    assert (scheme, unquote_plus(client_id), unquote_plus(secret)) == ("Basic", "rs:1", "s3cr%t +ü")


async def test_introspection_answers_are_cached(authorization_server, introspecting) -> None:
    authorization_server.answer = active_answer(authorization_server)
    await introspecting.verify("opaque", None)
    await introspecting.verify("opaque", None)
    await introspecting.verify("another", None)
    assert authorization_server.hits["introspect"] == 2


async def test_cached_answer_does_not_outlive_the_token(authorization_server, introspecting) -> None:
    authorization_server.answer = active_answer(authorization_server, exp=time.time() + 0.3)
    await introspecting.verify("opaque", None)
    await asyncio.sleep(0.4)
    authorization_server.answer = {"active": False}
    with pytest.raises(InvalidTokenError, match="not active"):
        await introspecting.verify("opaque", None)


async def test_introspection_checks_the_same_claims(authorization_server, introspecting) -> None:
    certificate = client_certificate()
    authorization_server.answer = active_answer(
        authorization_server, cnf={"x5t#S256": certificate_thumbprint(certificate)}
    )
    assert (await introspecting.verify("bound", certificate)).cnf is not None
    with pytest.raises(InvalidTokenError, match="does not match"):
        await introspecting.verify("bound", client_certificate())
    authorization_server.answer = active_answer(authorization_server, aud="https://other.example")
    with pytest.raises(InvalidTokenError, match="another audience"):
        await introspecting.verify("other-audience", None)


@pytest.mark.parametrize(("status", "answer"), [(200, {"activ": True}), (200, {"active": "yes"}), (401, {})])
async def test_unusable_introspection_answers(authorization_server, introspecting, status, answer) -> None:
    authorization_server.introspect_status = status
    authorization_server.answer = answer
    with pytest.raises(AuthorizationServerError):
        await introspecting.verify("opaque", None)


def test_introspection_needs_both_credentials() -> None:
    with pytest.raises(ValueError, match="both"):
        TokenVerifier(issuer="https://as.example", introspection_client_id="rs")


@pytest.fixture
async def protected(verifier: TokenVerifier) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    @bearer_required
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"client_id": request[TOKEN_KEY].client_id})

    app = web.Application()
    install_token_verifier(app, verifier)
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize("authorization", [None, "Basic dXNlcjpwYXNz", "Bearer"])
async def test_no_bearer_token_is_a_bare_challenge(protected, authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await protected.get("/", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await response.read() == b""


async def test_malformed_bearer_token_is_invalid_token(protected) -> None:
    response = await protected.get("/", headers={"Authorization": "Bearer a b"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert (await response.json())["error"] == "invalid_token"


async def test_valid_bearer_token_reaches_the_handler(authorization_server, protected) -> None:
    response = await protected.get("/", headers={"Authorization": f"bearer {authorization_server.token()}"})
    assert response.status == 200
    assert await response.json() == {"client_id": "client-1"}
