"""A resource server built with certbound.resource, in front of a real certbound, both over real TLS
(SPEC §3 demo-resource behaviour, RFC 6750 §3, RFC 8705 §3): bound tokens are accepted only with
their certificate; every refusal is 401 with the right WWW-Authenticate."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from certbound.cli.demo_resource import create_demo_app
from certbound.resource import TokenVerifier, certificate_thumbprint, start_resource_server
from certbound.testing import CertboundTestServer, ReadyClient
from tests.helpers import jwt_parts


@asynccontextmanager
async def resource_server(
    authorization_server: CertboundTestServer, directory: Path, **verifier_options: Any
) -> AsyncIterator[str]:
    """The demo API on 127.0.0.1 with a certificate from the AS's server CA; yields its URL."""
    leaf = authorization_server.server_ca.issue_cert("localhost", "127.0.0.1")
    label = secrets.token_hex(4)  # several resource servers may share a directory
    cert, key = directory / f"resource-{label}.pem", directory / f"resource-{label}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    verifier = TokenVerifier(
        issuer=authorization_server.issuer, ca_file=authorization_server.server_ca_file, **verifier_options
    )
    running = await start_resource_server(create_demo_app(verifier), tls_cert=cert, tls_key=key, port=0)
    try:
        yield running.url
    finally:
        await running.stop()


async def call(url: str, client: ReadyClient, token: str | None) -> tuple[int, Any, str | None]:
    """GET /resource over `client`'s TLS context (its certificate, if any)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with client.session() as http, http.get(url + "/resource", headers=headers) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response.headers.get("WWW-Authenticate")


def assert_invalid_token(result: tuple[int, Any, str | None], description: str) -> None:
    status, body, challenge = result
    assert (status, body["error"]) == (401, "invalid_token"), body
    assert description in body["error_description"]
    assert challenge is not None
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert description in challenge


@pytest.fixture
async def api(server: CertboundTestServer, tmp_path: Path) -> AsyncIterator[str]:
    async with resource_server(server, tmp_path) as url:
        yield url


@pytest.fixture
async def bound(server: CertboundTestServer) -> ReadyClient:
    return await server.new_client(tls_client_certificate_bound_access_tokens=True)


async def test_bound_token_with_its_certificate_is_accepted(api, bound) -> None:
    token = await bound.fetch_token(scope="read")
    assert bound.certificate is not None
    status, body, _ = await call(api, bound, token)
    assert status == 200, body
    assert body == {
        "client_id": bound.client_id,
        "scope": "read",
        "cnf": {"x5t#S256": certificate_thumbprint(bound.certificate)},
    }


async def test_bound_token_with_another_certificate_is_refused(server, api, bound) -> None:
    token = await bound.fetch_token()
    thief = await server.new_client(certificate=True)  # a valid certificate from the same CA
    assert_invalid_token(await call(api, thief, token), "does not match the token's binding")


async def test_bound_token_without_a_certificate_is_refused(server, api, bound) -> None:
    token = await bound.fetch_token()
    no_certificate = await server.new_client()
    assert no_certificate.certificate is None
    assert_invalid_token(await call(api, no_certificate, token), "present it over mutual TLS")


async def test_unbound_token_needs_no_certificate(server, api) -> None:
    client = await server.new_client()
    status, body, _ = await call(api, client, await client.fetch_token())
    assert (status, body["cnf"]) == (200, None)


async def test_no_token_is_a_bare_bearer_challenge(server, api) -> None:
    status, body, challenge = await call(api, await server.new_client(), None)
    assert (status, body, challenge) == (401, None, "Bearer")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "not base64 token!"])
async def test_malformed_token_is_invalid_token(server, api, token: str) -> None:
    status, body, challenge = await call(api, await server.new_client(), token)
    assert (status, body["error"]) == (401, "invalid_token")
    assert challenge is not None
    assert 'error="invalid_token"' in challenge


async def test_token_for_another_audience_is_refused(server, api) -> None:
    client = await server.new_client()
    token = await client.fetch_token(resource="https://elsewhere.example/")
    assert_invalid_token(await call(api, client, token), "another audience")


async def test_configured_audience_accepts_tokens_for_it_and_only_them(server, tmp_path) -> None:
    client = await server.new_client()
    mine = await client.fetch_token(resource="https://api.example/")
    default = await client.fetch_token()
    async with resource_server(server, tmp_path, audience="https://api.example/") as url:
        assert (await call(url, client, mine))[0] == 200
        assert_invalid_token(await call(url, client, default), "another audience")


async def test_token_from_another_authorization_server_is_refused(server, api) -> None:
    async with CertboundTestServer() as other:
        foreign = await (await other.new_client()).fetch_token()
    assert_invalid_token(await call(api, await server.new_client(), foreign), "does not publish")


async def test_reference_token_needs_introspection_mode(server, api) -> None:
    client = await server.new_client(access_token_as_jwt=False)
    assert_invalid_token(await call(api, client, await client.fetch_token()), "not a JWT")


async def sleep_past(expires_at: float) -> None:
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.1)


async def test_expired_token_is_refused_after_the_leeway(tmp_path) -> None:
    async with CertboundTestServer(token_lifetime=2) as server:
        client = await server.new_client(tls_client_certificate_bound_access_tokens=True)
        token = await client.fetch_token()
        async with (
            resource_server(server, tmp_path, clock_skew=0) as strict,
            resource_server(server, tmp_path, clock_skew=60) as lenient,
        ):
            assert (await call(strict, client, token))[0] == 200
            await sleep_past(jwt_parts(token)[1]["exp"])
            assert_invalid_token(await call(strict, client, token), "expired")
            # The twin: within the clock-skew leeway the same token still passes.
            assert (await call(lenient, client, token))[0] == 200


async def test_unreachable_authorization_server_is_503(tmp_path) -> None:
    server = await CertboundTestServer().start()
    client = await server.new_client()
    token = await client.fetch_token()
    async with resource_server(server, tmp_path) as url:
        await server.stop()
        assert (await call(url, client, token))[0] == 503


@pytest.fixture
async def introspecting(server: CertboundTestServer, tmp_path: Path) -> AsyncIterator[str]:
    """The demo API in introspection mode, caching nothing so a revocation is seen at once."""
    caller = await server.new_client()
    async with resource_server(
        server,
        tmp_path,
        introspection_client_id=caller.client_id,
        introspection_client_secret=caller.secret,
        introspection_cache_ttl=0,
    ) as url:
        yield url


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_introspection_mode_accepts_a_bound_token_with_its_certificate(
    server, introspecting, as_jwt: bool
) -> None:
    client = await server.new_client(
        tls_client_certificate_bound_access_tokens=True, access_token_as_jwt=as_jwt
    )
    token = await client.fetch_token(scope="write")
    status, body, _ = await call(introspecting, client, token)
    assert client.certificate is not None
    assert (status, body["scope"]) == (200, "write")
    assert body["cnf"] == {"x5t#S256": certificate_thumbprint(client.certificate)}


async def test_introspection_mode_refuses_another_certificate_and_none(server, introspecting) -> None:
    client = await server.new_client(
        tls_client_certificate_bound_access_tokens=True, access_token_as_jwt=False
    )
    token = await client.fetch_token()
    thief = await server.new_client(certificate=True)
    assert_invalid_token(await call(introspecting, thief, token), "does not match the token's binding")
    assert_invalid_token(await call(introspecting, await server.new_client(), token), "mutual TLS")


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_introspection_mode_refuses_a_revoked_token(server, introspecting, as_jwt: bool) -> None:
    client = await server.new_client(
        tls_client_certificate_bound_access_tokens=True, access_token_as_jwt=as_jwt
    )
    token = await client.fetch_token()
    assert (await call(introspecting, client, token))[0] == 200

    assert (await client.post("/revoke", {"token": token}))[0] == 200

    assert_invalid_token(await call(introspecting, client, token), "not active")


async def test_introspection_mode_refuses_a_wrong_audience(server, introspecting) -> None:
    client = await server.new_client(access_token_as_jwt=False)
    token = await client.fetch_token(resource="https://elsewhere.example/")
    assert_invalid_token(await call(introspecting, client, token), "another audience")


async def test_introspection_mode_refuses_an_expired_token(tmp_path) -> None:
    async with CertboundTestServer(token_lifetime=2) as server:
        caller = await server.new_client()
        client = await server.new_client(access_token_as_jwt=False)
        token = await client.fetch_token()
        async with resource_server(
            server,
            tmp_path,
            introspection_client_id=caller.client_id,
            introspection_client_secret=caller.secret,
        ) as url:
            assert (await call(url, client, token))[0] == 200
            await sleep_past((await caller.post("/introspect", {"token": token}))[1]["exp"])
            # The answer cached above (for up to 5 s by default) may not outlive the token's exp.
            assert_invalid_token(await call(url, client, token), "not active")


async def test_introspection_with_wrong_credentials_is_503(server, tmp_path) -> None:
    caller = await server.new_client()
    client = await server.new_client()
    token = await client.fetch_token()
    async with resource_server(
        server, tmp_path, introspection_client_id=caller.client_id, introspection_client_secret="wrong"
    ) as url:
        assert (await call(url, client, token))[0] == 503
