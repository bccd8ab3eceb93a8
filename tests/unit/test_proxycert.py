"""Client certificates from a trusted proxy's header (RFC 9440, Envoy XFCC, nginx; SPEC §8)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Sequence
from typing import Any
from unittest import mock
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict, CIMultiDictProxy

from certbound.clientcert import get_client_certificate
from certbound.config import Settings
from certbound.errors import InvalidRequestError
from certbound.proxycert import MAX_CHAIN, proxy_certificate_middleware, read_forwarded_certificate
from certbound.tls.peer import PeerCertificates
from tests.unit.pki.builders import ca_name, issue, make_ca, name

ROOT = make_ca(ca_name("Root"))
MIDDLE = make_ca(ca_name("Middle"), parent=ROOT)
LEAF = issue(MIDDLE, name((NameOID.COMMON_NAME, "client")))
LEAF_DER = LEAF.cert.public_bytes(Encoding.DER)


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def sf_binary(cert: x509.Certificate, *, padding: bool = True) -> str:
    text = base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii")
    return f":{text if padding else text.rstrip('=')}:"


def pem_url(*certs: x509.Certificate) -> str:
    return quote(b"".join(cert.public_bytes(Encoding.PEM) for cert in certs).decode("ascii"), safe="")


def assert_leaf(peer: PeerCertificates | None, chain: Sequence[x509.Certificate] = ()) -> None:
    assert peer is not None
    assert peer.leaf == LEAF.cert
    assert peer.chain == tuple(chain)
    assert peer.x5t_s256 == base64.urlsafe_b64encode(hashlib.sha256(LEAF_DER).digest()).rstrip(b"=").decode()


# -- RFC 9440 -----------------------------------------------------------------------------------


def test_rfc9440_leaf_and_chain() -> None:
    found = read_forwarded_certificate(
        "rfc9440",
        headers(("Client-Cert", sf_binary(LEAF.cert)), ("Client-Cert-Chain", f" {sf_binary(MIDDLE.cert)} ")),
    )
    assert_leaf(found, [MIDDLE.cert])


def test_rfc9440_chain_may_span_field_lines_and_skip_padding() -> None:
    found = read_forwarded_certificate(
        "rfc9440",
        headers(
            ("Client-Cert", sf_binary(LEAF.cert, padding=False)),
            ("Client-Cert-Chain", sf_binary(MIDDLE.cert)),
            ("client-cert-chain", sf_binary(ROOT.cert)),
        ),
    )
    assert_leaf(found, [MIDDLE.cert, ROOT.cert])


def test_rfc9440_absent_means_no_certificate() -> None:
    assert read_forwarded_certificate("rfc9440", headers()) is None


@pytest.mark.parametrize(
    "pairs",
    [
        [("Client-Cert", sf_binary(LEAF.cert)), ("Client-Cert", sf_binary(LEAF.cert))],
        [("Client-Cert", base64.b64encode(LEAF_DER).decode())],  # not a byte sequence
        [("Client-Cert", ":not base64!:")],
        [("Client-Cert", ":" + base64.b64encode(b"not DER").decode() + ":")],
        [("Client-Cert-Chain", sf_binary(MIDDLE.cert))],  # a chain without a leaf
        [("Client-Cert", sf_binary(LEAF.cert)), ("Client-Cert-Chain", f"{sf_binary(MIDDLE.cert)},")],
        [
            ("Client-Cert", sf_binary(LEAF.cert)),
            ("Client-Cert-Chain", ",".join([sf_binary(MIDDLE.cert)] * (MAX_CHAIN + 1))),
        ],
    ],
    ids=["twice", "bare-base64", "bad-base64", "not-der", "chain-only", "empty-member", "chain-too-long"],
)
def test_rfc9440_malformed(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequestError):
        read_forwarded_certificate("rfc9440", headers(*pairs))


# -- Envoy XFCC ---------------------------------------------------------------------------------


def test_xfcc_last_element_counts() -> None:
    stranger = issue(ROOT, name((NameOID.COMMON_NAME, "edge")))
    value = (
        f'By=spiffe://edge;Cert="{pem_url(stranger.cert)}";Subject="/CN=edge,x=y",'
        f"By=spiffe://sidecar;Hash={hashlib.sha256(LEAF_DER).hexdigest()};"
        f'Cert="{pem_url(LEAF.cert)}";Chain="{pem_url(LEAF.cert, MIDDLE.cert)}";'
        'Subject="CN=client";URI=spiffe://client;DNS=a.example'
    )
    # Envoy's Chain repeats the leaf: it is dropped.
    assert_leaf(
        read_forwarded_certificate("xfcc", headers(("X-Forwarded-Client-Cert", value))), [MIDDLE.cert]
    )


def test_xfcc_unquoted_values_and_case_insensitive_keys() -> None:
    value = f"by=x;cert={pem_url(LEAF.cert)}"
    assert_leaf(read_forwarded_certificate("xfcc", headers(("x-forwarded-client-cert", value))))


def test_xfcc_without_cert_in_the_last_element_means_no_certificate() -> None:
    value = f'Cert="{pem_url(LEAF.cert)}",By=spiffe://nearest;URI=spiffe://client'
    assert read_forwarded_certificate("xfcc", headers(("X-Forwarded-Client-Cert", value))) is None


@pytest.mark.parametrize(
    "value",
    [
        f'Cert="{pem_url(LEAF.cert)}',  # unterminated quote
        f"Cert={pem_url(LEAF.cert)};Cert={pem_url(LEAF.cert)}",
        f"Cert={pem_url(LEAF.cert)};Hash={'0' * 64}",
        "Cert=garbage",
        f"Cert={pem_url(LEAF.cert, MIDDLE.cert)}",  # Cert is one certificate
        f"Cert={pem_url(LEAF.cert)};Chain={pem_url(*[MIDDLE.cert] * (MAX_CHAIN + 1))}",
        f"Cert{pem_url(LEAF.cert)}",
    ],
    ids=[
        "unterminated",
        "repeated-key",
        "hash-mismatch",
        "not-pem",
        "two-leaves",
        "chain-too-long",
        "no-equals",
    ],
)
def test_xfcc_malformed(value: str) -> None:
    with pytest.raises(InvalidRequestError):
        read_forwarded_certificate("xfcc", headers(("X-Forwarded-Client-Cert", value)))


def test_xfcc_twice_is_refused() -> None:
    value = f"Cert={pem_url(LEAF.cert)}"
    with pytest.raises(InvalidRequestError, match="more than one"):
        read_forwarded_certificate(
            "xfcc", headers(("X-Forwarded-Client-Cert", value), ("X-Forwarded-Client-Cert", value))
        )


# -- nginx --------------------------------------------------------------------------------------


def test_nginx_escaped_pem() -> None:
    assert_leaf(read_forwarded_certificate("nginx", headers(("X-SSL-Client-Cert", pem_url(LEAF.cert)))))


def test_nginx_empty_means_no_certificate() -> None:
    assert read_forwarded_certificate("nginx", headers(("X-SSL-Client-Cert", ""))) is None


@pytest.mark.parametrize(
    "value", ["garbage", "%ZZ", quote("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")]
)
def test_nginx_malformed(value: str) -> None:
    with pytest.raises(InvalidRequestError):
        read_forwarded_certificate("nginx", headers(("X-SSL-Client-Cert", value)))


# -- only the configured format, only from trusted proxies ---------------------------------------


def test_other_formats_are_never_read() -> None:
    assert read_forwarded_certificate("rfc9440", headers(("X-SSL-Client-Cert", pem_url(LEAF.cert)))) is None
    assert read_forwarded_certificate("nginx", headers(("Client-Cert", sf_binary(LEAF.cert)))) is None
    assert read_forwarded_certificate("xfcc", headers(("Client-Cert", sf_binary(LEAF.cert)))) is None


TLS_PEER = PeerCertificates.from_certs(issue(ROOT, name((NameOID.COMMON_NAME, "proxy"))).cert, ())


async def through_middleware(
    peer_address: str, *pairs: tuple[str, str], **settings: Any
) -> PeerCertificates | None:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: {
        "peername": (peer_address, 40000),
        "peer_certificates": TLS_PEER,
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


@pytest.mark.parametrize("address", ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1"])
async def test_trusted_proxy_header_wins_over_tls_peer(address: str) -> None:
    found = await through_middleware(address, ("Client-Cert", sf_binary(LEAF.cert)), **TRUSTED)
    assert_leaf(found)


async def test_trusted_proxy_without_header_means_no_certificate() -> None:
    # The TLS peer is the proxy: its certificate is never the client's.
    assert await through_middleware("10.1.2.3", **TRUSTED) is None


async def test_untrusted_peer_header_is_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    found = await through_middleware("192.0.2.1", ("Client-Cert", sf_binary(LEAF.cert)), **TRUSTED)
    assert found is TLS_PEER
    assert "ignoring the Client-Cert header from 192.0.2.1" in caplog.text


async def test_untrusted_peer_malformed_header_is_ignored_too() -> None:
    assert await through_middleware("192.0.2.1", ("Client-Cert", "garbage"), **TRUSTED) is TLS_PEER


async def test_trusted_proxy_malformed_header_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        await through_middleware("10.1.2.3", ("Client-Cert", "garbage"), **TRUSTED)


async def test_configured_format_is_the_only_one_read_from_a_trusted_proxy() -> None:
    found = await through_middleware(
        "10.1.2.3", ("Client-Cert", sf_binary(LEAF.cert)), client_cert_header="nginx", **TRUSTED
    )
    assert found is None
