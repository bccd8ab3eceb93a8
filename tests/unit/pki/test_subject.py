"""The registered subject of a tls_client_auth client: exactly one field, each SAN kind matched by
its own rules, only the leaf (RFC 8705 §2.1.2)."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certbound.pki.subject import registered_subject, subject_matches
from tests.unit.pki.builders import ca_name, issue, make_ca, name

CA = make_ca(ca_name())
SANS: list[x509.GeneralName] = [
    x509.DNSName("client.example.com"),
    x509.UniformResourceIdentifier("spiffe://example.com/billing"),
    x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
    x509.IPAddress(ipaddress.ip_address("2001:db8::7")),
    x509.RFC822Name("Billing.Bot@Example.COM"),
]
LEAF = issue(CA, name((NameOID.COMMON_NAME, "billing")), sans=SANS).cert


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tls_client_auth_subject_dn", "CN=billing"),
        ("tls_client_auth_subject_dn", "cn = billing"),
        ("tls_client_auth_san_dns", "client.example.com"),
        ("tls_client_auth_san_dns", "CLIENT.Example.com"),
        ("tls_client_auth_san_uri", "spiffe://example.com/billing"),
        ("tls_client_auth_san_ip", "192.0.2.7"),
        ("tls_client_auth_san_ip", "2001:db8::7"),
        ("tls_client_auth_san_ip", "2001:DB8:0:0:0:0:0:7"),
        ("tls_client_auth_san_email", "Billing.Bot@example.com"),
    ],
)
def test_registered_field_matches_leaf(field: str, value: str) -> None:
    assert registered_subject({field: value}) == (field, value)
    assert subject_matches(field, value, LEAF)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tls_client_auth_subject_dn", "CN=billing2"),
        ("tls_client_auth_subject_dn", "CN=billing,O=Example"),
        ("tls_client_auth_san_dns", "other.example.com"),
        ("tls_client_auth_san_dns", "example.com"),
        ("tls_client_auth_san_uri", "spiffe://example.com/billing/"),
        ("tls_client_auth_san_uri", "SPIFFE://example.com/billing2"),
        ("tls_client_auth_san_ip", "192.0.2.8"),
        ("tls_client_auth_san_ip", "::ffff:192.0.2.7"),  # IPv4-mapped is another address family
        ("tls_client_auth_san_ip", "2001:db8::8"),
        ("tls_client_auth_san_email", "billing.bot@example.com"),  # the local part is exact
        ("tls_client_auth_san_email", "Billing.Bot@example.org"),
    ],
)
def test_other_values_do_not_match(field: str, value: str) -> None:
    assert not subject_matches(field, value, LEAF)


def test_an_ipv4_mapped_san_matches_only_its_ipv6_spelling() -> None:
    """RFC 5280 §4.2.1.6: a 16-octet entry is an IPv6 address, never the IPv4 address it maps."""
    mapped = issue(
        CA, name((NameOID.COMMON_NAME, "m")), sans=[x509.IPAddress(ipaddress.ip_address("::ffff:10.0.0.1"))]
    )
    assert subject_matches("tls_client_auth_san_ip", "::ffff:10.0.0.1", mapped.cert)
    assert subject_matches("tls_client_auth_san_ip", "::FFFF:a00:1", mapped.cert)
    assert not subject_matches("tls_client_auth_san_ip", "10.0.0.1", mapped.cert)
    plain = issue(
        CA, name((NameOID.COMMON_NAME, "p")), sans=[x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]
    )
    assert subject_matches("tls_client_auth_san_ip", "10.0.0.1", plain.cert)
    assert not subject_matches("tls_client_auth_san_ip", "::ffff:10.0.0.1", plain.cert)
    assert not subject_matches("tls_client_auth_san_ip", "::10.0.0.1", plain.cert)  # IPv4-compatible


def test_ip_networks_in_the_san_are_not_addresses() -> None:
    networked = issue(
        CA, name((NameOID.COMMON_NAME, "n")), sans=[x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))]
    )
    assert not subject_matches("tls_client_auth_san_ip", "10.0.0.0", networked.cert)


def test_dns_names_are_literal_not_wildcards() -> None:
    wildcard = issue(CA, name((NameOID.COMMON_NAME, "w")), sans=[x509.DNSName("*.example.com")]).cert
    assert subject_matches("tls_client_auth_san_dns", "*.example.com", wildcard)
    assert not subject_matches("tls_client_auth_san_dns", "a.example.com", wildcard)


def test_a_certificate_without_san_matches_no_san_field() -> None:
    bare = issue(CA, name((NameOID.COMMON_NAME, "bare"))).cert
    assert subject_matches("tls_client_auth_subject_dn", "CN=bare", bare)
    assert not subject_matches("tls_client_auth_san_dns", "bare", bare)


def test_only_the_leaf_subject_counts_never_the_issuer() -> None:
    # The CA's DN is "CN=Example Client CA,O=Example": it must not match as the client's subject.
    assert not subject_matches("tls_client_auth_subject_dn", "CN=Example Client CA,O=Example", LEAF)
    assert subject_matches("tls_client_auth_subject_dn", "CN=Example Client CA,O=Example", CA.cert)


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example"},
        {"tls_client_auth_san_uri": "https://a.example", "tls_client_auth_san_email": "a@example.com"},
        {"tls_client_auth_subject_dn": ""},
        {"tls_client_auth_subject_dn": "   "},
        {"tls_client_auth_subject_dn": 42},
        {"tls_client_auth_subject_dn": "CN=a,"},
        {"tls_client_auth_subject_dn": "NOPE=a"},
        {"tls_client_auth_san_ip": "192.0.2.300"},
        {"tls_client_auth_san_ip": "client.example.com"},
        {"tls_client_auth_san_ip": "fe80::1%eth0"},
        {"tls_client_auth_san_dns": "bücher.example"},
        {"tls_client_auth_san_uri": "not a uri"},
        {"tls_client_auth_san_email": "nobody"},
    ],
)
def test_registration_needs_exactly_one_well_formed_field(metadata: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="tls_client_auth"):
        registered_subject(metadata)


def test_null_fields_count_as_absent() -> None:
    metadata = {"tls_client_auth_subject_dn": None, "tls_client_auth_san_dns": "a.example"}
    assert registered_subject(metadata) == ("tls_client_auth_san_dns", "a.example")
