"""RFC 7009 revocation over real TLS (SPEC §6, §8): a client revokes its own tokens, never another
client's; invalid tokens answer 200; every node sees a revocation at once."""

from __future__ import annotations

import pytest

from certbound.testing import CertboundTestServer, ReadyClient

INACTIVE = {"active": False}


@pytest.fixture
async def resource_server(server: CertboundTestServer) -> ReadyClient:
    return await server.new_client("client_secret_basic")


async def is_active(caller: ReadyClient, token: str) -> bool:
    status, body = await caller.post("/introspect", {"token": token})
    assert status == 200, body
    active: bool = body["active"]
    return active


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_client_revokes_its_own_token(server, resource_server, method: str, as_jwt: bool) -> None:
    client = await server.new_client(method, access_token_as_jwt=as_jwt)
    token = await client.fetch_token()
    assert await is_active(resource_server, token)

    assert await client.post("/revoke", {"token": token}) == (200, None)

    assert not await is_active(resource_server, token)
    # Revoking again is still fine (RFC 7009 §2.2: an invalid token is not an error).
    assert await client.post("/revoke", {"token": token}) == (200, None)


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_another_clients_token_is_refused_and_stays_active(
    server, resource_server, as_jwt: bool
) -> None:
    owner = await server.new_client(access_token_as_jwt=as_jwt)
    other = await server.new_client()
    token = await owner.fetch_token()

    status, body = await other.post("/revoke", {"token": token})

    assert (status, body["error"]) == (400, "invalid_request")
    assert await is_active(resource_server, token)


@pytest.mark.parametrize("token", ["unknown-reference-token", "a.b.c", "x" * 2000])
async def test_unknown_or_invalid_token_answers_200(server, token: str) -> None:
    client = await server.new_client()
    assert await client.post("/revoke", {"token": token}) == (200, None)


async def test_a_refresh_token_hint_does_not_stop_an_access_token_revocation(server, resource_server) -> None:
    client = await server.new_client()
    token = await client.fetch_token()
    status, _ = await client.post("/revoke", {"token": token, "token_type_hint": "refresh_token"})
    assert status == 200
    assert not await is_active(resource_server, token)


async def test_unauthenticated_revocation_is_refused_and_the_token_stays_active(
    server, http, resource_server
) -> None:
    client = await server.new_client()
    token = await client.fetch_token()
    # client_id alone does not authenticate a confidential client.
    async with http.post(
        server.url + "/revoke",
        data={"token": token, "client_id": client.client_id},
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_client"
    assert await is_active(resource_server, token)


async def test_missing_token_parameter_is_invalid_request(server) -> None:
    client = await server.new_client()
    status, body = await client.post("/revoke", {})
    assert (status, body["error"]) == (400, "invalid_request")


async def test_get_is_refused(server, http) -> None:
    async with http.get(server.url + "/revoke", ssl=server.client_ssl_context()) as response:
        assert response.status == 405


async def issue_directly(server: CertboundTestServer, client: ReadyClient) -> str:
    """A token for a public client (which has no grant here yet), minted as a grant would."""
    context = server.running.context
    registered = await context.clients.get(client.client_id)
    assert registered is not None
    issued = await context.tokens.issue(
        registered, subject=client.client_id, scope="read", audience=server.issuer, x5t_s256=None
    )
    return issued.access_token


async def test_public_client_revokes_its_own_token_by_client_id(server, resource_server) -> None:
    public = await server.new_client("none")
    token = await issue_directly(server, public)
    assert await is_active(resource_server, token)

    assert await public.post("/revoke", {"token": token}) == (200, None)

    assert not await is_active(resource_server, token)


async def test_public_client_cannot_revoke_another_clients_token(server, resource_server) -> None:
    public = await server.new_client("none")
    token = await (await server.new_client()).fetch_token()
    status, body = await public.post("/revoke", {"token": token})
    assert (status, body["error"]) == (400, "invalid_request")
    assert await is_active(resource_server, token)


async def test_revocation_is_seen_by_every_node_at_once(tmp_path) -> None:
    shared = {"db": f"sqlite:///{tmp_path}/shared.db", "issuer": "https://as.certbound.test"}
    async with CertboundTestServer(**shared) as node_a, CertboundTestServer(**shared) as node_b:
        client = await node_a.new_client()
        caller_on_b = await node_b.new_client()
        token = await client.fetch_token()
        assert await is_active(caller_on_b, token)
        # Node B has just answered "active": nothing it keeps may delay the revocation.
        assert await client.post("/revoke", {"token": token}) == (200, None)
        assert not await is_active(caller_on_b, token)
