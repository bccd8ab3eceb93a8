"""certbound.pytest_plugin and the ReadyClient it hands out: every method authenticates as registered,
with the certificate its method or binding needs; the server can be configured, and bad options are
refused by name; the plugin loads in another project's suite under pytest-asyncio strict mode and
imports no server code until a fixture is used; the harness serves on the socket it bound first."""

from __future__ import annotations

import json
import socket
import ssl
import textwrap
import urllib.error
import urllib.parse
import urllib.request

import pytest

from certbound import testing
from certbound.errors import ConfigError
from certbound.testing import CertboundServerThread, CertboundTestServer, TokenRequestError
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
    client = certbound_client_factory(method)
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
    bound = certbound_client_factory(tls_client_certificate_bound_access_tokens=True)
    assert bound.certificate is not None
    assert "cnf" in jwt_parts(await bound.fetch_token())[1]

    without = certbound_client_factory(tls_client_certificate_bound_access_tokens=True, certificate=False)
    with pytest.raises(TokenRequestError) as refused:
        await without.fetch_token()
    assert (refused.value.status, refused.value.body["error"]) == (400, "invalid_request")


async def test_a_public_client_is_refused_client_credentials(certbound_client_factory) -> None:
    public = certbound_client_factory("none")
    with pytest.raises(TokenRequestError) as refused:
        await public.fetch_token()
    assert refused.value.body["error"] == "unauthorized_client"


async def test_session_presents_the_clients_certificate(certbound_server, certbound_client_factory) -> None:
    client = certbound_client_factory("tls_client_auth")
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
                client = certbound_client_factory("private_key_jwt")
                assert await client.fetch_token()
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "certbound.pytest_plugin", "-p", "asyncio", "--asyncio-mode=strict"
    )
    result.assert_outcomes(passed=1)


async def test_a_client_with_a_certificate_uses_the_mtls_listener() -> None:
    async with CertboundTestServer(mtls_port=0) as server:  # 0: a port the kernel picks
        mtls_port = server.settings.mtls_port
        assert mtls_port not in (None, 0, server.running.port)
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


async def test_the_server_serves_on_the_sockets_it_bound_first(monkeypatch: pytest.MonkeyPatch) -> None:
    bound: list[socket.socket] = []
    original = testing.bind_listener

    def recording_bind(host: str, port: int) -> socket.socket:
        sock = original(host, port)
        bound.append(sock)
        return sock

    monkeypatch.setattr(testing, "bind_listener", recording_bind)
    async with CertboundTestServer(mtls_port=0) as server:
        served = [listener.sockets[0].fileno() for listener in server.running.listeners]
        assert served == [sock.fileno() for sock in bound]
        assert server.issuer == f"https://localhost:{bound[0].getsockname()[1]}"


async def test_a_port_in_use_is_refused_not_replaced() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="cannot listen"):
            await CertboundTestServer(port=taken.getsockname()[1]).start()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tokn_lifetime": 60}, r"unknown option 'tokn_lifetime' \(did you mean 'token_lifetime'\?\)"),
        ({"token_lifetime": 0}, r"\['token_lifetime'\]: must be >= 1"),
        ({"registration": "sometimes"}, r"\['registration'\]: must be one of open, token, closed"),
        ({"trusted_proxy": ["not-a-cidr"]}, r"\['trusted_proxy'\]: not a CIDR"),
        ({"scopes": 'read wr"ite'}, r"\['scopes'\]: invalid scope token"),
        ({"registration": "token"}, "--registration token needs --registration-token"),
    ],
)
def test_bad_server_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CertboundServerThread(**options).start()


def test_options_take_flag_strings_or_python_values() -> None:
    options = {"token_lifetime": "30", "scopes": ["read", "admin"], "trusted_proxy": "10.0.0.0/8"}
    with CertboundServerThread(**options) as server:
        assert (server.settings.token_lifetime, server.settings.scopes) == (30, ("read", "admin"))
        assert [str(network) for network in server.settings.trusted_proxy] == ["10.0.0.0/8"]


def test_a_synchronous_test_gets_tokens_with_the_stdlib(certbound_server, certbound_client_factory) -> None:
    client = certbound_client_factory("tls_client_auth")
    assert client.cert_file is not None
    assert client.key_file is not None
    # The files are what requests/httpx take: a fresh context from them authenticates the client.
    context = ssl.create_default_context(cafile=str(client.ca_file))
    context.load_cert_chain(client.cert_file, client.key_file)
    _, form = client.authentication()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", **form}).encode()
    with urllib.request.urlopen(client.base_url + "/token", body, context=context) as response:
        assert "cnf" in jwt_parts(json.load(response)["access_token"])[1]
    # The twin: without the certificate the same request is refused.
    bare = ssl.create_default_context(cafile=str(client.ca_file))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(client.base_url + "/token", body, context=bare)
    assert refused.value.code == 401
    # And the async helpers run on the server's loop from synchronous code.
    assert jwt_parts(certbound_server.run(client.fetch_token()))[1]["client_id"] == client.client_id


def test_loading_the_plugin_imports_no_server_code(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_light=textwrap.dedent(
            """
            import sys

            HEAVY = {"certbound.testing", "certbound.runtime", "aiohttp", "cryptography", "trustme"}

            def test_nothing_heavy_is_imported_at_start():
                assert HEAVY.isdisjoint(sys.modules)

            def test_a_fixture_imports_what_it_needs(certbound_server):
                assert HEAVY <= set(sys.modules)
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "certbound.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


async def test_a_server_that_cannot_start_releases_its_port(tmp_path) -> None:
    bound: list[socket.socket] = []
    original = testing.bind_listener

    def recording_bind(host: str, port: int) -> socket.socket:
        bound.append(original(host, port))
        return bound[-1]

    missing = tmp_path / "missing-ca.pem"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(testing, "bind_listener", recording_bind)
        with pytest.raises(ConfigError, match="client CA file not found"):
            await CertboundTestServer(client_ca=(missing,)).start()
    assert [sock.fileno() for sock in bound] == [-1]  # closed
