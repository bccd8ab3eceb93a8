"""The token server's forwarded-certificate middleware (SPEC §8): which peers' headers count, with
address ranges and proxy certificate pins taken from Settings."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict

from certbound.clientcert import get_client_certificate
from certbound.config import Settings
from certbound.errors import InvalidRequestError
from certbound.proxycert import proxy_certificate_middleware
from certbound.tls.peer import PeerCertificates
from tests.unit.pki.builders import ca_name, issue, make_ca, name

ROOT = make_ca(ca_name("Root"))
LEAF = issue(ROOT, name((NameOID.COMMON_NAME, "client"))).cert
PROXY = PeerCertificates.from_certs(issue(ROOT, name((NameOID.COMMON_NAME, "proxy"))).cert, ())
OTHER_PROXY = PeerCertificates.from_certs(issue(ROOT, name((NameOID.COMMON_NAME, "other proxy"))).cert, ())
CLIENT_CERT = ("Client-Cert", ":" + base64.b64encode(LEAF.public_bytes(Encoding.DER)).decode() + ":")


async def through_middleware(
    peer_address: str,
    *pairs: tuple[str, str],
    connection: PeerCertificates | None = PROXY,
    **settings: Any,
) -> PeerCertificates | None:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: {
        "peername": (peer_address, 40000),
        "peer_certificates": connection,
    }.get(key, default)
    request = make_mocked_request("POST", "/token", headers=CIMultiDict(pairs), transport=transport)
    middleware = proxy_certificate_middleware(Settings(**settings))
    seen: list[PeerCertificates | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(get_client_certificate(request))
        return web.Response()

    await middleware(request, handler)
    return seen[0]


TRUSTED = {"trusted_proxy": (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))}
PINNED = {**TRUSTED, "trusted_proxy_cert_sha256": (hashlib.sha256(PROXY.leaf_der).digest(),)}


@pytest.mark.parametrize("address", ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1"])
async def test_trusted_proxy_header_wins_over_tls_peer(address: str) -> None:
    found = await through_middleware(address, CLIENT_CERT, **TRUSTED)
    assert found is not None
    assert found.leaf == LEAF


async def test_trusted_proxy_without_header_means_no_certificate() -> None:
    # The TLS peer is the proxy: its certificate is never the client's.
    assert await through_middleware("10.1.2.3", **TRUSTED) is None


async def test_untrusted_peer_header_is_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    found = await through_middleware("192.0.2.1", CLIENT_CERT, **TRUSTED)
    assert found is PROXY
    assert "ignoring the Client-Cert header: 192.0.2.1 is not a trusted proxy address" in caplog.text


async def test_untrusted_peer_malformed_header_is_ignored_too() -> None:
    assert await through_middleware("192.0.2.1", ("Client-Cert", "garbage"), **TRUSTED) is PROXY


async def test_trusted_proxy_malformed_header_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        await through_middleware("10.1.2.3", ("Client-Cert", "garbage"), **TRUSTED)


async def test_configured_format_is_the_only_one_read_from_a_trusted_proxy() -> None:
    found = await through_middleware("10.1.2.3", CLIENT_CERT, client_cert_header="nginx", **TRUSTED)
    assert found is None


async def test_pinned_proxy_certificate_makes_the_header_count() -> None:
    found = await through_middleware("10.1.2.3", CLIENT_CERT, **PINNED)
    assert found is not None
    assert found.leaf == LEAF


@pytest.mark.parametrize("connection", [OTHER_PROXY, None], ids=["other-certificate", "no-certificate"])
async def test_unpinned_connection_from_a_trusted_address_is_untrusted(
    connection: PeerCertificates | None, caplog: pytest.LogCaptureFixture
) -> None:
    # As from an untrusted address: the header is ignored, the connection's own certificate counts.
    found = await through_middleware("10.1.2.3", CLIENT_CERT, connection=connection, **PINNED)
    assert found is connection
    assert "has no pinned proxy certificate" in caplog.text


async def test_pins_do_not_trust_an_address_outside_the_ranges() -> None:
    assert await through_middleware("192.0.2.1", CLIENT_CERT, **PINNED) is PROXY
