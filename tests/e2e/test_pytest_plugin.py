"""certbound.pytest_plugin and the ReadyClient it hands out: every method authenticates as registered,
with the certificate its method or binding needs; the server can be configured; and the plugin
loads in another project's suite with `-p certbound.pytest_plugin` under pytest-asyncio strict mode."""

from __future__ import annotations

import socket
import textwrap

import pytest

from certbound.testing import CertboundTestServer, TokenRequestError
from tests.helpers import jwt_parts

pytest_plugins = ["certbound.pytest_plugin", "pytester"]

CONFIDENTIAL = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
]
MTLS = {"tls_client_auth", "self_signed_tls_client_auth"}


@pytest.fixture
def certbound_server_options() -> dict[str, object]:
    return {"token_lifetime": 42, "scopes": ("read", "write", "admin")}


@pytest.mark.parametrize("method", CONFIDENTIAL)
async def test_every_confidential_method_gets_a_token(certbound_client_factory, method: str) -> None:
    client = await certbound_client_factory(method)
    assert client.method == method
    assert (client.certificate is not None) is (method in MTLS)

    token = await client.fetch_token(scope="admin")

    claims = jwt_parts(token)[1]
    assert (claims["client_id"], claims["scope"]) == (client.client_id, "admin")
    assert claims["exp"] - claims["iat"] == 42  # certbound_server_options reached the server
    assert ("cnf" in claims) is (method in MTLS)
    # The same credentials authenticate at the other endpoints too.
    status, body = await client.post("/introspect", {"token": token})
    assert (status, body["active"]) == (200, True)


async def test_a_bound_client_gets_a_certificate_unless_told_not_to(certbound_client_factory) -> None:
    bound = await certbound_client_factory(tls_client_certificate_bound_access_tokens=True)
    assert bound.certificate is not None
    assert "cnf" in jwt_parts(await bound.fetch_token())[1]

    without = await certbound_client_factory(
        tls_client_certificate_bound_access_tokens=True, certificate=False
    )
    with pytest.raises(TokenRequestError) as refused:
        await without.fetch_token()
    assert (refused.value.status, refused.value.body["error"]) == (400, "invalid_request")


async def test_a_public_client_is_refused_client_credentials(certbound_client_factory) -> None:
    public = await certbound_client_factory("none")
    with pytest.raises(TokenRequestError) as refused:
        await public.fetch_token()
    assert refused.value.body["error"] == "unauthorized_client"


async def test_session_presents_the_clients_certificate(certbound_server, certbound_client_factory) -> None:
    client = await certbound_client_factory("tls_client_auth")
    headers, form = client.authentication()
    async with (
        client.session() as http,
        http.post(
            certbound_server.url + "/token",
            data={"grant_type": "client_credentials", **form},
            headers=headers,
        ) as response,
    ):
        assert response.status == 200


def test_plugin_loads_in_another_suite_in_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_other_project=textwrap.dedent(
            """
            import pytest

            @pytest.mark.asyncio
            async def test_token(certbound_client_factory):
                client = await certbound_client_factory("private_key_jwt")
                assert await client.fetch_token()
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "certbound.pytest_plugin", "-p", "asyncio", "--asyncio-mode=strict"
    )
    result.assert_outcomes(passed=1)


async def test_a_client_with_a_certificate_uses_the_mtls_listener() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        mtls_port = probe.getsockname()[1]
    async with CertboundTestServer(mtls_port=mtls_port) as server:
        client = await server.new_client("tls_client_auth")
        assert client.base_url == f"https://127.0.0.1:{mtls_port}"
        assert "cnf" in jwt_parts(await client.fetch_token())[1]
        # The twin: the main listener does not ask for the certificate, so the same client fails there.
        _, form = client.authentication()
        async with (
            client.session() as http,
            http.post(server.url + "/token", data={"grant_type": "client_credentials", **form}) as response,
        ):
            assert response.status == 401
