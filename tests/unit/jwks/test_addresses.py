"""The jwks_uri SSRF guard (IANA special-purpose address registries; issue 9 finding 7)."""

from __future__ import annotations

import ipaddress

import pytest

from certbound.errors import InvalidClientMetadataError
from certbound.jwks import is_forbidden_address, validate_jwks_uri

FORBIDDEN = [
    # IPv4 special-purpose blocks
    "0.0.0.0",
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",
    "127.0.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "192.0.0.9",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6 outside global unicast
    "::",
    "::1",
    "::a00:1",  # IPv4-compatible 10.0.0.1
    "::808:808",  # IPv4-compatible, even of a public address
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:8.8.8.8",  # IPv4-mapped, even of a public address: write the IPv4 address
    "::ffff:0:a00:1",  # IPv4-translated (RFC 2765)
    "::ffff:0:808:808",
    "64:ff9b:1::808:808",  # local-use NAT64 (RFC 8215)
    "100::1",  # discard-only
    "5f00::1",  # SRv6 SIDs
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",  # site-local, deprecated
    "ff02::1",
    "ff0e::1",  # global-scope multicast
    # inside 2000::/3
    "2001::1",  # Teredo
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo with a private client address
    "2001:2::1",  # benchmarking
    "2001:db8::1",
    "3fff::1",  # documentation (RFC 9637)
    # embedding a forbidden IPv4 address
    "64:ff9b::a00:1",  # NAT64 well-known prefix, 10.0.0.1
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",  # 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001::1",
    "64:ff9b::808:808",  # NAT64 well-known prefix of a public address (what DNS64 gives)
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_special_purpose_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_global_unicast_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["::a00:1", "::ffff:0:a00:1", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "fec0::1"]
)
def test_a_literal_jwks_uri_of_the_finding_is_refused_at_registration(address: str) -> None:
    with pytest.raises(InvalidClientMetadataError, match="not a public address"):
        validate_jwks_uri(f"https://[{address}]/jwks", allow_private=False)
    # Twin: the operator's --allow-private-fetch lets it through.
    assert validate_jwks_uri(f"https://[{address}]/jwks", allow_private=True)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("http://client.example/jwks", "https"),
        ("https:///jwks", "https"),
        ("https://client.example:0/jwks", "https"),
        ("https://client.example/jwks#frag", "fragment"),
        ("https://user@client.example/jwks", "user information"),
        ("https://127.1/jwks", "not a valid address"),
        ("https://2130706433/jwks", "not a valid address"),
        ("https://[fe80::1%25eth0]/jwks", "not a public address"),
        (7, "must be a string"),
    ],
)
def test_jwks_uri_shape(uri: object, problem: str) -> None:
    with pytest.raises(InvalidClientMetadataError, match=problem):
        validate_jwks_uri(uri, allow_private=False)


def test_a_name_passes_registration_and_is_checked_when_resolved() -> None:
    assert validate_jwks_uri("https://client.example/jwks", allow_private=False)
