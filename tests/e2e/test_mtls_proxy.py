"""Client certificates from a TLS-terminating proxy end to end (RFC 9440, Envoy XFCC, nginx;
SPEC §8). The test client plays the proxy: it connects from 127.0.0.1 and forwards the client
certificate in the configured header."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certbound.testing import CertboundTestServer
from tests.helpers import access_log, check_refusal, jwt_parts

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
ELSEWHERE = (ipaddress.ip_network("10.0.0.0/8"),)


def _certs(leaf: trustme.LeafCert) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(blob.bytes()) for blob in leaf.cert_chain_pems]


def _sf(cert: x509.Certificate) -> str:
    return ":" + base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii") + ":"


def _pem(*certs: x509.Certificate) -> str:
    return quote(b"".join(cert.public_bytes(Encoding.PEM) for cert in certs).decode("ascii"), safe="")


def rfc9440(leaf: trustme.LeafCert) -> dict[str, str]:
    first, *chain = _certs(leaf)
    return {"Client-Cert": _sf(first), "Client-Cert-Chain": ", ".join(_sf(cert) for cert in chain)}


def xfcc(leaf: trustme.LeafCert) -> dict[str, str]:
    certs = _certs(leaf)
    outer = trustme.CA().issue_cert("edge.example")  # an element added by a farther proxy
    return {
        "X-Forwarded-Client-Cert": f'By=spiffe://edge;Cert="{_pem(*_certs(outer)[:1])}",'
        f'By=spiffe://sidecar;Cert="{_pem(certs[0])}";Chain="{_pem(*certs)}";Subject="CN=x,O=y"'
    }


def nginx(leaf: trustme.LeafCert) -> dict[str, str]:
    # nginx's $ssl_client_escaped_cert carries the leaf only: trust a leaf issued by the root.
    return {"X-SSL-Client-Cert": _pem(_certs(leaf)[0])}


FORMATS: dict[str, tuple[Callable[[trustme.LeafCert], dict[str, str]], bool]] = {
    "rfc9440": (rfc9440, True),
    "xfcc": (xfcc, True),
    "nginx": (nginx, False),
}


def x5t_s256(leaf: trustme.LeafCert) -> str:
    digest = hashlib.sha256(_certs(leaf)[0].public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def token_request(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    client_id: str,
    headers: dict[str, str],
    proxy_cert: trustme.LeafCert | None = None,
) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": "client_credentials", "client_id": client_id}
    context = server.client_ssl_context(proxy_cert)
    async with http.post(server.url + "/token", data=form, headers=headers, ssl=context) as response:
        return response.status, await response.json()


def client_leaf(server: CertboundTestServer, with_intermediate: bool) -> trustme.LeafCert:
    issuer = server.client_ca.create_child_ca() if with_intermediate else server.client_ca
    return issuer.issue_cert("billing.example")


@pytest.mark.parametrize("header_format", sorted(FORMATS))
async def test_header_from_a_trusted_proxy(http: aiohttp.ClientSession, header_format: str) -> None:
    encode, with_intermediate = FORMATS[header_format]
    async with CertboundTestServer(trusted_proxy=LOOPBACK, client_cert_header=header_format) as server:
        leaf = client_leaf(server, with_intermediate)
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        status, body = await token_request(http, server, client.client_id, encode(leaf))
        assert status == 200, body
        assert jwt_parts(body["access_token"])[1]["cnf"] == {"x5t#S256": x5t_s256(leaf)}
        # Twin: the proxy forwarded no certificate.
        status, body = await token_request(http, server, client.client_id, {})
        assert (status, body["error"]) == (401, "invalid_client"), body


@pytest.mark.parametrize("header_format", sorted(FORMATS))
async def test_header_from_any_other_peer_is_ignored(http: aiohttp.ClientSession, header_format: str) -> None:
    encode, with_intermediate = FORMATS[header_format]
    async with CertboundTestServer(trusted_proxy=ELSEWHERE, client_cert_header=header_format) as server:
        leaf = client_leaf(server, with_intermediate)
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        with access_log() as lines:
            status, body = await token_request(http, server, client.client_id, encode(leaf))
        assert status == 401, body
        assert check_refusal(lines[-1], body, "no client certificate") == "no_certificate"
        # Twin: the same client presenting its certificate over TLS itself.
        status, body = await token_request(http, server, client.client_id, {}, proxy_cert=leaf)
        assert status == 200, body


async def test_proxy_headers_are_ignored_when_no_proxy_is_trusted(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    leaf = client_leaf(server, True)
    client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
    status, body = await token_request(http, server, client.client_id, rfc9440(leaf))
    assert (status, body["error"]) == (401, "invalid_client"), body


async def test_header_wins_over_the_proxys_own_certificate(http: aiohttp.ClientSession) -> None:
    async with CertboundTestServer(trusted_proxy=LOOPBACK) as server:
        proxy_cert = server.issue_client_cert("proxy.example")
        leaf = client_leaf(server, True)
        proxy_client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="proxy.example")
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        status, body = await token_request(
            http, server, client.client_id, rfc9440(leaf), proxy_cert=proxy_cert
        )
        assert status == 200, body
        assert jwt_parts(body["access_token"])[1]["cnf"] == {"x5t#S256": x5t_s256(leaf)}
        # The proxy's own certificate never authenticates anyone behind it.
        status, body = await token_request(http, server, proxy_client.client_id, {}, proxy_cert=proxy_cert)
        assert (status, body["error"]) == (401, "invalid_client"), body


async def test_only_the_configured_format_is_read(http: aiohttp.ClientSession) -> None:
    async with CertboundTestServer(trusted_proxy=LOOPBACK, client_cert_header="xfcc") as server:
        leaf = client_leaf(server, True)
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        status, body = await token_request(http, server, client.client_id, rfc9440(leaf))
        assert (status, body["error"]) == (401, "invalid_client"), body


@pytest.mark.parametrize(
    "headers",
    [
        {"Client-Cert": "not a byte sequence"},
        {"Client-Cert": ":" + base64.b64encode(b"not a certificate").decode() + ":"},
        {"Client-Cert-Chain": ":AAAA:"},
    ],
    ids=["syntax", "not-der", "chain-without-leaf"],
)
async def test_malformed_header_from_a_trusted_proxy_is_invalid_request(
    http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with CertboundTestServer(trusted_proxy=LOOPBACK) as server:
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        status, body = await token_request(http, server, client.client_id, headers)
        assert (status, body["error"]) == (400, "invalid_request"), body


async def test_repeated_header_and_long_chain_are_refused(http: aiohttp.ClientSession) -> None:
    async with CertboundTestServer(trusted_proxy=LOOPBACK) as server:
        leaf = client_leaf(server, True)
        client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
        form = {"grant_type": "client_credentials", "client_id": client.client_id}
        first, middle = _certs(leaf)
        for headers in (
            [("Client-Cert", _sf(first)), ("Client-Cert", _sf(first))],
            [("Client-Cert", _sf(first)), ("Client-Cert-Chain", ", ".join([_sf(middle)] * 6))],
        ):
            async with http.post(
                server.url + "/token", data=form, headers=headers, ssl=server.client_ssl_context()
            ) as response:
                body = await response.json()
            assert (response.status, body["error"]) == (400, "invalid_request"), body
