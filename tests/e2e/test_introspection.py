"""RFC 7662 introspection over real TLS (SPEC §4, §6, §8): JWT and reference tokens, bound and
unbound; who may ask; and every kind of token that must come back as `{"active": false}` alone."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from certbound.jose import b64url_encode, json_compact
from certbound.keys import SigningKey
from certbound.testing import CertboundTestServer, ReadyClient
from tests.helpers import basic_auth, jwt_parts, sign_jwt

INACTIVE = {"active": False}


def x5t_s256(client: ReadyClient) -> str:
    """RFC 8705 §3.1, computed here independently of the server."""
    assert client.certificate is not None
    digest = hashlib.sha256(client.certificate.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@pytest.fixture
async def resource_server(server: CertboundTestServer) -> ReadyClient:
    """The caller: a resource server registered as a confidential client."""
    return await server.new_client("client_secret_basic")


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_unbound_token_is_active_with_every_member(server, resource_server, as_jwt: bool) -> None:
    client = await server.new_client("client_secret_post", access_token_as_jwt=as_jwt)
    token = await client.fetch_token(scope="read")
    assert (token.count(".") == 2) is as_jwt

    status, body = await resource_server.post("/introspect", {"token": token})

    assert status == 200, body
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == client.client_id
    assert body["scope"] == "read"
    assert body["iss"] == body["aud"] == server.issuer
    assert body["token_type"] == "Bearer"
    assert body["exp"] - body["iat"] == 600
    assert abs(body["iat"] - time.time()) < 60
    assert isinstance(body["jti"], str)
    assert "cnf" not in body
    if as_jwt:
        assert body["jti"] == jwt_parts(token)[1]["jti"]


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_bound_token_introspects_with_its_certificate_thumbprint(
    server, resource_server, as_jwt: bool
) -> None:
    client = await server.new_client(
        "client_secret_basic", tls_client_certificate_bound_access_tokens=True, access_token_as_jwt=as_jwt
    )
    token = await client.fetch_token()

    status, body = await resource_server.post("/introspect", {"token": token})

    assert status == 200, body
    assert body["active"] is True
    assert body["cnf"] == {"x5t#S256": x5t_s256(client)}
    if as_jwt:
        assert jwt_parts(token)[1]["cnf"] == body["cnf"]


async def test_resource_audience_comes_back_as_aud(server, resource_server) -> None:
    client = await server.new_client()
    token = await client.fetch_token(resource="https://api.example.com/")
    _, body = await resource_server.post("/introspect", {"token": token})
    assert body["aud"] == "https://api.example.com/"


async def test_any_confidential_method_may_introspect(server) -> None:
    caller = await server.new_client("client_secret_post")
    token = await (await server.new_client()).fetch_token()
    status, body = await caller.post("/introspect", {"token": token})
    assert (status, body["active"]) == (200, True)


async def test_the_hint_is_only_a_hint(server, resource_server) -> None:
    token = await (await server.new_client()).fetch_token()
    form = {"token": token, "token_type_hint": "refresh_token"}
    status, body = await resource_server.post("/introspect", form)
    assert (status, body["active"]) == (200, True)


async def introspect_raw(server, http, data, headers=None):
    async with http.post(
        server.url + "/introspect", data=data, headers=headers, ssl=server.client_ssl_context()
    ) as response:
        return response.status, await response.json(), response.headers


async def test_unauthenticated_caller_is_invalid_client(server, http) -> None:
    token = await (await server.new_client()).fetch_token()
    status, body, _ = await introspect_raw(server, http, {"token": token})
    assert (status, body["error"]) == (401, "invalid_client")


async def test_wrong_secret_is_invalid_client_with_basic_challenge(server, http, resource_server) -> None:
    token = await (await server.new_client()).fetch_token()
    headers = {"Authorization": basic_auth(resource_server.client_id, "wrong")}
    status, body, response_headers = await introspect_raw(server, http, {"token": token}, headers)
    assert (status, body["error"]) == (401, "invalid_client")
    assert response_headers["WWW-Authenticate"].startswith("Basic")


async def test_public_client_may_not_introspect(server) -> None:
    public = await server.new_client("none")
    token = await (await server.new_client()).fetch_token()
    status, body = await public.post("/introspect", {"token": token})
    assert (status, body["error"]) == (401, "invalid_client")


async def test_missing_token_parameter_is_invalid_request(server, resource_server) -> None:
    status, body = await resource_server.post("/introspect", {})
    assert (status, body["error"]) == (400, "invalid_request")


async def test_get_is_refused(server, http) -> None:
    async with http.get(server.url + "/introspect", ssl=server.client_ssl_context()) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


async def test_json_body_is_refused(server, http, resource_server) -> None:
    headers, _ = resource_server.authentication()
    async with http.post(
        server.url + "/introspect", json={"token": "x"}, headers=headers, ssl=server.client_ssl_context()
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_response_is_not_cached(server, http, resource_server) -> None:
    headers, _ = resource_server.authentication()
    _, _, response_headers = await introspect_raw(server, http, {"token": "x"}, headers)
    assert response_headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_revoked_token_is_inactive_and_nothing_else(server, resource_server, as_jwt: bool) -> None:
    client = await server.new_client(access_token_as_jwt=as_jwt)
    token = await client.fetch_token()
    assert (await client.post("/revoke", {"token": token}))[0] == 200
    assert await resource_server.post("/introspect", {"token": token}) == (200, INACTIVE)


async def test_expired_tokens_are_inactive() -> None:
    async with CertboundTestServer(token_lifetime=2) as server:
        caller = await server.new_client()
        tokens = [
            await (await server.new_client()).fetch_token(),
            await (await server.new_client(access_token_as_jwt=False)).fetch_token(),
        ]
        answers = [(await caller.post("/introspect", {"token": token}))[1] for token in tokens]
        assert [answer["active"] for answer in answers] == [True, True]
        await asyncio.sleep(max(answer["exp"] for answer in answers) - time.time() + 0.1)
        for token in tokens:
            assert await caller.post("/introspect", {"token": token}) == (200, INACTIVE)


async def test_token_of_a_deleted_client_is_inactive(server, resource_server) -> None:
    client = await server.new_client()
    token = await client.fetch_token()
    await server.manager().delete(client.client_id)
    assert await resource_server.post("/introspect", {"token": token}) == (200, INACTIVE)


async def test_token_from_another_server_is_inactive(server, resource_server) -> None:
    async with CertboundTestServer() as other:
        foreign = await (await other.new_client()).fetch_token()
    assert await resource_server.post("/introspect", {"token": foreign}) == (200, INACTIVE)


def forge(server: CertboundTestServer, claims: dict[str, object], *, kid: str | None = None) -> str:
    """A JWT signed by a key that is not the server's, optionally claiming the server's kid."""
    key = SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()), "ES256", 0)
    if kid is not None:
        key = dataclasses.replace(key, kid=kid, jwk={**key.jwk, "kid": kid})
    return sign_jwt(key, "at+jwt", claims)


async def test_forged_and_malformed_tokens_are_inactive(server, resource_server) -> None:
    genuine = await (await server.new_client()).fetch_token()
    header, claims = jwt_parts(genuine)
    head, payload, signature = genuine.split(".")
    ours = server.running.context.keys.active
    candidates = [
        forge(server, claims),  # unknown kid
        forge(server, claims, kid=header["kid"]),  # our kid, someone else's key
        f"{head}.{b64url_encode(json_compact({**claims, 'scope': 'admin'}))}.{signature}",
        f"{head}.{payload}.{signature[:-4]}AAAA",  # broken signature
        sign_jwt(ours, "at+jwt", {**claims, "iss": "https://other.example"}),
        sign_jwt(ours, "JWT", claims),  # our signature, but not an access token
        "not-a-token",
        "a.b.c",
        "....",
        genuine + "x",
    ]
    for token in candidates:
        assert await resource_server.post("/introspect", {"token": token}) == (200, INACTIVE), token
    # The twin: the genuine token itself is active.
    assert (await resource_server.post("/introspect", {"token": genuine}))[1]["active"] is True


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
async def test_mtls_caller_needs_its_certificate(server, http, method: str) -> None:
    caller = await server.new_client(method)
    token = await (await server.new_client()).fetch_token()
    status, body = await caller.post("/introspect", {"token": token})
    assert (status, body["active"]) == (200, True)
    # The same client_id over a connection without the certificate proves nothing.
    status, body, _ = await introspect_raw(server, http, {"token": token, "client_id": caller.client_id})
    assert (status, body["error"]) == (401, "invalid_client")
