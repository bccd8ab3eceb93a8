"""Parsing client certificates forwarded in a proxy's header (RFC 9440, Envoy XFCC, nginx; SPEC §8)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from certbound.errors import InvalidRequestError
from certbound.proxyheaders import MAX_CHAIN, read_forwarded_certificate
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


# -- only the configured format ------------------------------------------------------------------


def test_other_formats_are_never_read() -> None:
    assert read_forwarded_certificate("rfc9440", headers(("X-SSL-Client-Cert", pem_url(LEAF.cert)))) is None
    assert read_forwarded_certificate("nginx", headers(("Client-Cert", sf_binary(LEAF.cert)))) is None
    assert read_forwarded_certificate("xfcc", headers(("Client-Cert", sf_binary(LEAF.cert)))) is None


# -- property tests: any header text is a certificate, nothing, or the project's error ------------

FORMAT_HEADERS = {
    "rfc9440": ["Client-Cert", "Client-Cert-Chain"],
    "xfcc": ["X-Forwarded-Client-Cert"],
    "nginx": ["X-SSL-Client-Cert"],
}


def outcome(header_format: str, pairs: Sequence[tuple[str, str]]) -> PeerCertificates | None:
    """The parser's answer, which may only be a certificate, None or InvalidRequestError."""
    try:
        found = read_forwarded_certificate(header_format, headers(*pairs))
    except InvalidRequestError:
        return None
    assert found is None or isinstance(found, PeerCertificates)
    if found is not None:
        assert len(found.chain) <= MAX_CHAIN
    return found


_header_format = st.sampled_from(sorted(FORMAT_HEADERS))


@st.composite
def _random_headers(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    header_format = draw(_header_format)
    names = st.sampled_from(FORMAT_HEADERS[header_format])
    pairs = draw(st.lists(st.tuples(names, st.text(max_size=300)), max_size=3))
    return header_format, pairs


@settings(max_examples=300, deadline=None)
@given(_random_headers())
def test_arbitrary_text_in_every_format(case: tuple[str, list[tuple[str, str]]]) -> None:
    outcome(*case)


_VALID = {
    "rfc9440": [("Client-Cert", sf_binary(LEAF.cert)), ("Client-Cert-Chain", sf_binary(MIDDLE.cert))],
    "xfcc": [
        (
            "X-Forwarded-Client-Cert",
            f'By=spiffe://edge;Cert="{pem_url(LEAF.cert)}";Chain="{pem_url(LEAF.cert, MIDDLE.cert)}"',
        )
    ],
    "nginx": [("X-SSL-Client-Cert", pem_url(LEAF.cert))],
}


@settings(max_examples=300, deadline=None)
@given(_header_format, st.data())
def test_mutated_valid_headers(header_format: str, data: st.DataObject) -> None:
    """Valid headers with a few characters replaced, dropped or inserted: near-misses reach the deep
    parsers (base64, DER, PEM, percent-decoding) that random text rarely does."""
    pairs = []
    for field, value in _VALID[header_format]:
        text = list(value)
        for _ in range(data.draw(st.integers(0, 4))):
            position = data.draw(st.integers(0, len(text)))
            action = data.draw(st.sampled_from(["replace", "drop", "insert"]))
            char = data.draw(st.characters(codec="utf-8", exclude_categories=["Cs"]))
            if action == "insert" or position == len(text):
                text.insert(position, char)
            elif action == "replace":
                text[position] = char
            else:
                del text[position]
        pairs.append((field, "".join(text)))
    found = outcome(header_format, pairs)
    if found is not None and pairs == _VALID[header_format]:
        assert found.leaf == LEAF.cert


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.binary(max_size=200), max_size=MAX_CHAIN + 2))
def test_arbitrary_bytes_as_der(leaf: bytes, chain: list[bytes]) -> None:
    def sf(data: bytes) -> str:
        return ":" + base64.b64encode(data).decode("ascii") + ":"

    pairs = [("Client-Cert", sf(leaf))]
    if chain:
        pairs.append(("Client-Cert-Chain", ", ".join(sf(member) for member in chain)))
    outcome("rfc9440", pairs)


@pytest.mark.parametrize("header_format", sorted(FORMAT_HEADERS))
def test_valid_headers_give_the_leaf(header_format: str) -> None:
    assert_leaf(
        outcome(header_format, _VALID[header_format]), [MIDDLE.cert] if header_format != "nginx" else []
    )
