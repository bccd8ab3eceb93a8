"""Operating mTLS (RFC 8705 §5, SPEC §3 and §8): the separate --mtls-port listener and its
discovery aliases, and SIGHUP reloading client CAs and the server certificate without dropping
connections or restarting."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from OpenSSL import SSL

from certbound.testing import CertboundTestServer
from tests.e2e.processes import ServerProcess, free_port, run_cli
from tests.helpers import access_log, check_refusal

FORM = {"grant_type": "client_credentials"}


async def token_status(
    http: aiohttp.ClientSession, url: str, client_id: str, context: ssl.SSLContext
) -> tuple[int, dict[str, Any]]:
    async with http.post(url + "/token", data={**FORM, "client_id": client_id}, ssl=context) as response:
        return response.status, await response.json()


def counting_session() -> tuple[aiohttp.ClientSession, list[object]]:
    """A session that records each new connection (to prove a keep-alive connection survived)."""
    connections: list[object] = []

    async def created(_session: object, _context: object, params: object) -> None:
        connections.append(params)

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(created)
    return aiohttp.ClientSession(trace_configs=[trace]), connections


# -- --mtls-port --------------------------------------------------------------------------------


def _handshake_ca_names(port: int, server_ca: Path) -> list[object] | None:
    """Handshake with pyOpenSSL and return the CA names of the server's CertificateRequest: None
    when the server sent no CertificateRequest at all (the client's state machine never passes
    through reading one)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.load_verify_locations(str(server_ca))
    context.set_verify(SSL.VERIFY_PEER, lambda *_: True)
    states: list[bytes] = []
    context.set_info_callback(lambda connection, _where, _ret: states.append(connection.get_state_string()))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(None)  # pyOpenSSL needs a blocking socket
        connection = SSL.Connection(context, sock)
        connection.set_tlsext_host_name(b"localhost")
        connection.set_connect_state()
        connection.do_handshake()
        names = list(connection.get_client_ca_list())
        connection.shutdown()
    return names if b"SSLv3/TLS read server certificate request" in states else None


async def test_mtls_port_aliases_and_certificate_requests(http: aiohttp.ClientSession) -> None:
    async with CertboundTestServer(mtls_port=0) as server:
        mtls_port = server.settings.mtls_port
        async with http.get(
            server.url + "/.well-known/openid-configuration", ssl=server.client_ssl_context()
        ) as response:
            metadata = await response.json()
        base = f"https://localhost:{mtls_port}"
        assert metadata["mtls_endpoint_aliases"] == {
            "token_endpoint": base + "/token",
            "introspection_endpoint": base + "/introspect",
            "revocation_endpoint": base + "/revoke",
        }
        # The main port sends no CertificateRequest; the mTLS port does, naming the client CA.
        assert (
            await asyncio.to_thread(_handshake_ca_names, server.running.port, server.server_ca_file) is None
        )
        names = await asyncio.to_thread(_handshake_ca_names, mtls_port, server.server_ca_file)
        assert names is not None
        assert len(names) == 1

        leaf = server.issue_client_cert("billing.example")
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        context = server.client_ssl_context(leaf)
        status, body = await token_status(http, f"https://127.0.0.1:{mtls_port}", client.client_id, context)
        assert status == 200, body
        # Twin: the same certificate offered to the main port is never asked for.
        with access_log() as lines:
            status, body = await token_status(http, server.url, client.client_id, context)
        assert status == 401, body
        assert check_refusal(lines[-1], body, "no client certificate") == "no_certificate"


async def test_without_mtls_port_the_main_port_asks_for_a_certificate(server: CertboundTestServer) -> None:
    names = await asyncio.to_thread(_handshake_ca_names, server.running.port, server.server_ca_file)
    assert names is not None


# -- reload (in process) ------------------------------------------------------------------------


async def test_reload_trusts_a_new_client_ca_and_keeps_live_connections(
    server: CertboundTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    old_leaf = server.issue_client_cert("old.example")
    old_client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="old.example")
    newcomer = trustme.CA()
    new_leaf = newcomer.create_child_ca().issue_cert("new.example")
    new_client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="new.example")
    session, connections = counting_session()
    async with session, aiohttp.ClientSession() as other:
        old_context = server.client_ssl_context(old_leaf)
        assert (await token_status(session, server.url, old_client.client_id, old_context))[0] == 200
        status, _ = await token_status(
            other, server.url, new_client.client_id, server.client_ssl_context(new_leaf)
        )
        assert status == 401

        ca_file = server.directory / "client-ca.pem"
        ca_file.write_bytes(server.client_ca.cert_pem.bytes() + newcomer.cert_pem.bytes())
        with caplog.at_level(logging.INFO, logger="certbound"):
            assert server.running.reload()
        assert "reloaded" in caplog.text

        status, body = await token_status(
            other, server.url, new_client.client_id, server.client_ssl_context(new_leaf)
        )
        assert status == 200, body
        # The connection opened before the reload is still the one in use, and still works.
        assert (await token_status(session, server.url, old_client.client_id, old_context))[0] == 200
        assert len(connections) == 1

        # A file that cannot be used: logged, and the running configuration stays.
        ca_file.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="certbound"):
            assert not server.running.reload()
        assert "reload failed" in caplog.text
        assert "client-ca.pem" in caplog.text
        status, body = await token_status(
            other, server.url, new_client.client_id, server.client_ssl_context(new_leaf)
        )
        assert status == 200, body


async def test_reload_serves_a_new_server_certificate_to_new_connections(server: CertboundTestServer) -> None:
    new_server_ca = trustme.CA()
    leaf = new_server_ca.issue_cert("localhost", "127.0.0.1")
    session, connections = counting_session()
    async with session:
        old_trust = server.client_ssl_context()
        async with session.get(server.url + "/healthz", ssl=old_trust) as response:
            assert response.status == 200
        (server.directory / "server.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        (server.directory / "server.key").write_bytes(leaf.private_key_pem.bytes())
        assert server.running.reload()

        new_trust = ssl.create_default_context()
        new_server_ca.configure_trust(new_trust)
        async with aiohttp.ClientSession() as fresh:
            async with fresh.get(server.url + "/healthz", ssl=new_trust) as response:
                assert response.status == 200
            # Twin: a new connection that trusts only the old CA now fails verification.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await fresh.get(server.url + "/healthz", ssl=server.client_ssl_context())
        # The keep-alive connection made before the reload carries on with the old certificate.
        async with session.get(server.url + "/healthz", ssl=old_trust) as response:
            assert response.status == 200
        assert len(connections) == 1


# -- SIGHUP to a real `certbound serve` ---------------------------------------------------------


def _write_pki(directory: Path) -> tuple[trustme.CA, trustme.CA]:
    server_ca, client_ca = trustme.CA(), trustme.CA()
    leaf = server_ca.issue_cert("localhost", "127.0.0.1")
    (directory / "server.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    (directory / "server.key").write_bytes(leaf.private_key_pem.bytes())
    (directory / "server-ca.pem").write_bytes(server_ca.cert_pem.bytes())
    (directory / "client-ca.pem").write_bytes(client_ca.cert_pem.bytes())
    return server_ca, client_ca


def _add_mtls_client(directory: Path, db: str) -> str:
    data = directory / "client.json"
    data.write_text(
        json.dumps(
            {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "new.example"}
        )
    )
    result = run_cli("clients", "add", "--data", str(data), "--db", db)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("client_id: ", 1)[1].split()[0]


async def test_sighup_reloads_client_cas_of_a_running_server(tmp_path: Path) -> None:
    server_ca, client_ca = _write_pki(tmp_path)
    db = f"sqlite:///{tmp_path}/certbound.db"
    client_id = _add_mtls_client(tmp_path, db)
    newcomer = trustme.CA()
    context = ssl.create_default_context()
    server_ca.configure_trust(context)
    newcomer.issue_cert("new.example").configure_cert(context)
    port = free_port()
    process = ServerProcess(
        "--port", str(port), "--issuer", f"https://localhost:{port}",
        "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key"),
        "--client-ca", str(tmp_path / "client-ca.pem"), "--db", db,
    )  # fmt: skip
    with process:
        url = f"https://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            assert (await token_status(http, url, client_id, context))[0] == 401
            (tmp_path / "client-ca.pem").write_bytes(client_ca.cert_pem.bytes() + newcomer.cert_pem.bytes())
            process.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            status = 401
            while status != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                status, body = await token_status(http, url, client_id, context)
            assert status == 200, body
        returncode, stderr = process.stop()
    assert returncode == 0, stderr
    assert "reloaded" in stderr
