"""Which peers may forward a client certificate (SPEC §8): address ranges, proxy certificate pins,
the fingerprint syntax, and the start-up warning about wide ranges."""

from __future__ import annotations

import hashlib
import ipaddress
import logging

import pytest
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict

from certbound.proxytrust import TrustedProxies, log_wide_networks, peer_ip, sha256_fingerprint
from certbound.tls.peer import PeerCertificates
from tests.unit.pki.builders import ca_name, issue, make_ca, name

ROOT = make_ca(ca_name("Root"))
PROXY = PeerCertificates.from_certs(issue(ROOT, name((NameOID.COMMON_NAME, "proxy"))).cert, ())
DIGEST = hashlib.sha256(PROXY.leaf_der).digest()


@pytest.mark.parametrize(
    "text",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        ":".join(f"{byte:02X}" for byte in DIGEST),  # as `openssl x509 -fingerprint -sha256` prints it
        f"  {DIGEST.hex()}\n",
    ],
    ids=["lower", "upper", "openssl-colons", "padded"],
)
def test_fingerprint_spellings(text: str) -> None:
    assert sha256_fingerprint(text) == DIGEST


@pytest.mark.parametrize(
    "value",
    [DIGEST.hex()[:-2], DIGEST.hex() + "00", "g" * 64, "", hashlib.sha1(b"x").hexdigest(), 42, DIGEST[:-1]],
    ids=["short", "long", "not-hex", "empty", "sha1", "number", "short-bytes"],
)
def test_fingerprint_refusals(value: object) -> None:
    with pytest.raises(ValueError, match="SHA-256 fingerprint"):
        sha256_fingerprint(value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("fe80::1%eth0", "fe80::1"),
        ("not an address", None),
        (None, None),
        (("10.1.2.3", 1), None),
    ],
)
def test_peer_ip(host: object, expected: str | None) -> None:
    assert peer_ip(host) == (ipaddress.ip_address(expected) if expected else None)


def test_unknown_header_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown client certificate header format"):
        TrustedProxies(["10.0.0.1"], header_format="x-client-cert")


def test_pins_need_a_network() -> None:
    with pytest.raises(ValueError, match="need at least one trusted proxy network"):
        TrustedProxies([], cert_sha256=[DIGEST.hex()])


def test_bad_network_is_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        TrustedProxies(["10.0.0.0/33"])


def test_header_from_a_pinned_proxy_counts_and_only_then() -> None:
    proxies = TrustedProxies(["10.0.0.5"], header_format="nginx", cert_sha256=[DIGEST.hex()])
    forwarded = CIMultiDict({"X-SSL-Client-Cert": ""})  # a proxy saying "the client sent none"
    assert proxies.client_certificate("10.0.0.5", PROXY, forwarded) is None
    other = PeerCertificates.from_certs(issue(ROOT, name((NameOID.COMMON_NAME, "other"))).cert, ())
    assert proxies.client_certificate("10.0.0.5", other, forwarded) is other
    assert proxies.client_certificate("10.0.0.6", PROXY, forwarded) is PROXY


def test_wide_networks_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.7", "2001:db8::1/128", "2001:db8::/127"])
    assert [str(network) for network in proxies.wide_networks()] == ["10.0.0.0/8", "2001:db8::/127"]
    with caplog.at_level(logging.WARNING, logger="certbound.proxy"):
        log_wide_networks(proxies)
    assert [record.getMessage().split(" holds")[0] for record in caplog.records] == [
        "trusted proxy range 10.0.0.0/8",
        "trusted proxy range 2001:db8::/127",
    ]
    assert "--trusted-proxy-cert-sha256" in caplog.records[0].getMessage()


def test_single_addresses_and_no_proxies_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="certbound.proxy"):
        log_wide_networks(TrustedProxies(["192.0.2.7", "2001:db8::1"]))
        log_wide_networks(None)
    assert caplog.records == []
