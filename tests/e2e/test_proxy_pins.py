"""`--trusted-proxy-cert-sha256` (SPEC §8, issue 9 finding 18): forwarded-certificate headers count
only on connections whose own TLS client certificate is pinned, over real sockets; the start-up
warning about trusted ranges wider than one address; bad pins are bad configuration."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certbound.devpki import write_dev_pki
from certbound.testing import CertboundTestServer
from tests.e2e.processes import ServerProcess, free_port, run_cli
from tests.e2e.test_mtls_proxy import client_leaf, rfc9440, token_request, x5t_s256
from tests.helpers import jwt_parts

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


def fingerprint(leaf: trustme.LeafCert) -> bytes:
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
    return hashlib.sha256(der).digest()


async def test_header_counts_only_from_the_pinned_proxy(http: aiohttp.ClientSession) -> None:
    proxy_ca = trustme.CA()  # the proxy's certificate need not come from a client CA
    pinned, intruder = proxy_ca.issue_cert("proxy.example"), proxy_ca.issue_cert("proxy.example")
    async with CertboundTestServer(
        trusted_proxy=LOOPBACK, trusted_proxy_cert_sha256=(fingerprint(pinned),)
    ) as server:
        leaf = client_leaf(server, True)
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        headers = rfc9440(leaf)

        status, body = await token_request(http, server, client.client_id, headers, proxy_cert=pinned)
        assert status == 200, body
        assert jwt_parts(body["access_token"])[1]["cnf"] == {"x5t#S256": x5t_s256(leaf)}

        # The same address with another certificate (same name, same CA) or none: the header is
        # ignored as from an untrusted address, and the connection's own certificate is the client's.
        for proxy_cert in (intruder, None):
            status, body = await token_request(http, server, client.client_id, headers, proxy_cert=proxy_cert)
            assert (status, body["error"]) == (401, "invalid_client"), body


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dev_pki(tmp_path_factory.mktemp("pki")).directory


def serve(pki: Path, tmp_path: Path, *flags: str) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        "--port", str(port), "--db", f"sqlite:///{tmp_path}/certbound.db",
        "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
        *flags,
    )  # fmt: skip


def test_a_wide_trusted_range_is_warned_about_at_start_up(pki: Path, tmp_path: Path) -> None:
    with serve(pki, tmp_path, "--trusted-proxy", "127.0.0.0/8", "--trusted-proxy", "::1") as server:
        status, stderr = server.stop()
    assert status == 0
    warnings = [line for line in stderr.splitlines() if "trusted proxy range" in line]
    assert len(warnings) == 1, stderr
    assert "127.0.0.0/8 holds 16777216 addresses" in warnings[0]
    assert "--trusted-proxy-cert-sha256" in warnings[0]


def test_single_address_ranges_start_quietly(pki: Path, tmp_path: Path) -> None:
    pin = ":".join(f"{byte:02X}" for byte in hashlib.sha256(b"proxy").digest())
    flags = ("--trusted-proxy", "127.0.0.1", "--trusted-proxy", "::1/128", "--trusted-proxy-cert-sha256", pin)
    with serve(pki, tmp_path, *flags) as server:
        status, stderr = server.stop()
    assert status == 0
    assert "trusted proxy range" not in stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trusted-proxy", "127.0.0.1", "--trusted-proxy-cert-sha256", "abcd"], "64 hex digits"),
        (["--trusted-proxy-cert-sha256", "ab" * 32], "--trusted-proxy-cert-sha256 needs --trusted-proxy"),
    ],
)
def test_bad_pins_are_one_error_line(pki: Path, tmp_path: Path, flags: list[str], message: str) -> None:
    result = run_cli(
        "serve", "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"), *flags
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("certbound: error: ")
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
