"""RFC 4514 DN parsing and comparison (SPEC §8): the same name spelled differently matches; a
different name never does."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from certbound.pki.dn import DNSyntaxError, looks_reversed, name_matches, parse_dn, structure_of

ALICE = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc."),
        x509.NameAttribute(NameOID.COMMON_NAME, "Alice Smith"),
    ]
)


@pytest.mark.parametrize(
    "spelling",
    [
        r"CN=Alice Smith,O=Example\, Inc.,C=DE",
        r"cn=Alice Smith,o=Example\, Inc.,c=DE",
        r"commonName=Alice Smith,organizationName=Example\, Inc.,countryName=DE",
        r"2.5.4.3=Alice Smith,2.5.4.10=Example\, Inc.,2.5.4.6=DE",
        r"CN=Alice Smith,O=Example\2C Inc.,C=DE",
        r"CN=Alice Smith,O=Example\2c Inc.,C=DE",
        r"CN=Alice\20Smith,O=Example\2C\20Inc\2E,C=\44\45",
        r"  CN = Alice Smith ,  O =Example\, Inc.  ,C= DE  ",
        r"CN=#0C0B416C69636520536D697468,O=Example\, Inc.,C=#13024445",
    ],
)
def test_spellings_of_one_name_match(spelling: str) -> None:
    assert name_matches(spelling, ALICE)


@pytest.mark.parametrize(
    "other",
    [
        r"CN=alice smith,O=Example\, Inc.,C=DE",  # values are not case-folded
        r"C=DE,O=Example\, Inc.,CN=Alice Smith",  # RDN order is significant
        r"CN=Alice Smith,O=Example\, Inc.",  # a missing RDN
        r"CN=Alice Smith,O=Example\, Inc.,C=DE,DC=com",  # an extra RDN
        r"CN=Alice Smith+C=DE,O=Example\, Inc.",  # RDNs regrouped
        r"CN=Alice Smith,O=Example\, Inc.,C=DE\ ",  # an escaped trailing space is part of the value
        r"CN=\ Alice Smith,O=Example\, Inc.,C=DE",  # so is an escaped leading one
        r"CN=Alice  Smith,O=Example\, Inc.,C=DE",  # inner spaces are kept
        r"OU=Alice Smith,O=Example\, Inc.,C=DE",  # another attribute type
        r"CN=Alice Smith,O=Example Inc.,C=DE",
    ],
)
def test_different_names_do_not_match(other: str) -> None:
    assert not name_matches(other, ALICE)


def test_multi_valued_rdn_is_a_set() -> None:
    cert_name = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "Alice"),
                    x509.NameAttribute(NameOID.USER_ID, "42"),
                ]
            ),
        ]
    )
    assert name_matches("CN=Alice+UID=42,O=Example", cert_name)
    assert name_matches("UID=42 + CN=Alice,O=Example", cert_name)
    assert name_matches("0.9.2342.19200300.100.1.1=42+cn=Alice,o=Example", cert_name)
    # Twin: the same attributes as two RDNs are another name.
    assert not name_matches("CN=Alice,UID=42,O=Example", cert_name)
    assert not name_matches("CN=Alice+UID=43,O=Example", cert_name)


@pytest.mark.parametrize(
    "string_type",
    [
        _ASN1Type.PrintableString,
        _ASN1Type.UTF8String,
        _ASN1Type.BMPString,
        _ASN1Type.UniversalString,
        _ASN1Type.IA5String,
        _ASN1Type.T61String,
        _ASN1Type.VisibleString,
    ],
)
def test_any_string_type_compares_as_text(string_type: _ASN1Type) -> None:
    cert_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example", _type=string_type),
            x509.NameAttribute(NameOID.COMMON_NAME, "Alice Smith", _type=string_type),
        ]
    )
    assert name_matches("CN=Alice Smith,O=Example", cert_name)
    assert not name_matches("CN=Alice Smith,O=Example2", cert_name)


def test_non_ascii_values_hex_escapes_and_normalization() -> None:
    cert_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Jürgen Çelik")])
    assert name_matches("CN=Jürgen Çelik", cert_name)
    assert name_matches(r"CN=J\C3\BCrgen \C3\87elik", cert_name)
    # Decomposed ü (u + U+0308) is the same Unicode text.
    assert name_matches("CN=Ju\u0308rgen C\u0327elik", cert_name)
    assert not name_matches("CN=Jurgen Celik", cert_name)


def test_characters_allowed_unescaped_inside_a_value() -> None:
    cert_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a=b#c")])
    assert name_matches("CN=a=b#c", cert_name)
    assert name_matches(r"CN=a\=b\#c", cert_name)
    # "CN=a O=b" is one attribute: '=' and spaces need no escape inside a value.
    assert parse_dn("CN=a O=b") == ((("2.5.4.3", "a O=b"),),)


def test_a_leading_hash_must_be_escaped_to_be_text() -> None:
    cert_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "#1")])
    assert name_matches(r"CN=\#1", cert_name)
    with pytest.raises(DNSyntaxError):
        parse_dn("CN=#1")


def test_parse_returns_asn1_order() -> None:
    assert parse_dn("CN=a,O=b") == ((("2.5.4.10", "b"),), (("2.5.4.3", "a"),))
    assert parse_dn("") == ()
    assert parse_dn("   ") == ()


def test_empty_name_matches_nothing() -> None:
    assert not name_matches("", x509.Name([]))


def test_binary_attribute_values_match_nothing() -> None:
    cert_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Alice"),
            x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x01\x02", _type=_ASN1Type.BitString),
        ]
    )
    assert structure_of(cert_name) is None
    assert not name_matches("CN=Alice", cert_name)


@pytest.mark.parametrize(
    "malformed",
    [
        "CN",
        "CN=a,",
        ",CN=a",
        "CN=a,,O=b",
        "CN=a+",
        "=a",
        "XYZZY=a",
        "CN=a;O=b",
        'CN=a"b',
        "CN=a<b",
        "CN=a>b",
        "CN=a\x00b",
        r"CN=a\zz",
        "CN=a\\",
        r"CN=\C3",
        r"CN=\C3\28",
        "CN=#",
        "CN=#0C",
        "CN=#0C014142",  # length 1, two content bytes
        "CN=#0C03",
        "CN=#0101FF",  # a BOOLEAN, not a string
        "CN=#0C0141 x",
        "01.2.3=a",  # leading zero in an OID arc
        "2=a",  # a numericoid has at least two arcs
        "C N=a",
    ],
)
def test_malformed_names_are_refused(malformed: str) -> None:
    with pytest.raises(DNSyntaxError):
        parse_dn(malformed)
    assert not name_matches(malformed, ALICE)


def test_ber_values_decode_by_string_type() -> None:
    assert parse_dn("CN=#1E0A0041006C006900630065") == parse_dn("CN=Alice")  # BMPString
    assert parse_dn("CN=#1305416C696365") == parse_dn("CN=Alice")  # PrintableString
    assert parse_dn("CN=#0C8105416C696365") == parse_dn("CN=Alice")  # long-form length


# -- property: any name survives any legal re-spelling ------------------------------------------

_OIDS = [
    (NameOID.COMMON_NAME, ("CN", "cn", "commonName", "2.5.4.3")),
    (NameOID.ORGANIZATION_NAME, ("O", "o", "organizationName", "2.5.4.10")),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, ("OU", "ou", "2.5.4.11")),
    (NameOID.LOCALITY_NAME, ("L", "l", "2.5.4.7")),
    (NameOID.DOMAIN_COMPONENT, ("DC", "dc", "0.9.2342.19200300.100.1.25")),
]
_VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12
)


def _escape_char(char: str, draw: st.DrawFn) -> str:
    """One character as plain text, a backslash escape or UTF-8 hex pairs (either case)."""
    style = draw(st.sampled_from(["plain", "hex", "backslash"]))
    if style == "hex":
        return "".join(f"\\{byte:02X}" if draw(st.booleans()) else f"\\{byte:02x}" for byte in char.encode())
    if char in ' "#+,;<=>\\' and (style == "backslash" or char in '"+,;<>\\'):
        return "\\" + char
    return char


@st.composite
def _spelled_names(draw: st.DrawFn) -> tuple[x509.Name, str]:
    rdns: list[x509.RelativeDistinguishedName] = []
    spelled_rdns: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        chosen = draw(
            st.lists(st.sampled_from(_OIDS), min_size=1, max_size=3, unique_by=lambda item: item[0])
        )
        attributes = []
        spelled = []
        for oid, spellings in chosen:
            value = draw(_VALUES)
            attributes.append(x509.NameAttribute(oid, value))
            text = "".join(_escape_char(char, draw) for char in value)
            # Leading '#' or space and trailing space are significant: they must be escaped.
            if text[0] in " #":
                text = "\\" + text
            if text.endswith(" ") and not text.endswith("\\ "):
                text = text[:-1] + "\\ "
            pad = draw(st.sampled_from(["", " ", "  "]))
            spelled.append(f"{pad}{draw(st.sampled_from(spellings))}{pad}={pad}{text}")
        rdns.append(x509.RelativeDistinguishedName(attributes))
        spelled_rdns.append("+".join(draw(st.permutations(spelled))))
    return x509.Name(rdns), ",".join(reversed(spelled_rdns))


@given(_spelled_names())
def test_any_respelling_matches(case: tuple[x509.Name, str]) -> None:
    cert_name, spelled = case
    assert name_matches(spelled, cert_name), spelled
    # cryptography's own RFC 4514 output is one more spelling.
    assert name_matches(cert_name.rfc4514_string(), cert_name)


@settings(max_examples=50)
@given(_spelled_names(), _spelled_names())
def test_different_names_never_match(first: tuple[x509.Name, str], second: tuple[x509.Name, str]) -> None:
    if structure_of(first[0]) != structure_of(second[0]):
        assert not name_matches(first[1], second[0])


@pytest.mark.parametrize(
    "pasted",
    [
        "C=DE,O=Example\\, Inc.,CN=Alice Smith",  # ALICE in ASN.1 order, as openssl prints it
        "C = DE, O = Example\\, Inc., CN = Alice Smith",  # openssl's default spacing
        "DC=com,DC=example,OU=People,CN=alice",
        "dc=com,dc=example,cn=alice+uid=42",  # a multi-valued last RDN holding a CN
    ],
)
def test_a_dn_in_asn1_order_looks_reversed(pasted: str) -> None:
    assert looks_reversed(pasted)


@pytest.mark.parametrize(
    "dn",
    [
        "CN=Alice Smith,O=Example\\, Inc.,C=DE",  # RFC 4514 order: the twin of the first case above
        "CN=alice,DC=example,DC=com",
        "C=DE",  # one RDN has no order
        "C=DE,O=Example",  # no CN at the end
        "O=Example,CN=alice",  # no C or DC at the start
        "C=DE,,CN=broken",  # not a DN at all: nothing to advise, registration refuses it
    ],
)
def test_other_dns_do_not(dn: str) -> None:
    assert not looks_reversed(dn)


def test_a_reversed_dn_does_not_match_the_certificate_it_was_copied_from() -> None:
    assert looks_reversed("C=DE,O=Example\\, Inc.,CN=Alice Smith")
    assert not name_matches("C=DE,O=Example\\, Inc.,CN=Alice Smith", ALICE)
    assert name_matches(ALICE.rfc4514_string(), ALICE)


# --- untrusted text: a DN or DNSyntaxError, never anything else --------------------------------------

# Text made mostly of what RFC 4514 gives meaning to, so the parser's branches are all reached.
_DN_TEXT = st.text(
    alphabet=st.sampled_from(list('CNOUcnou=,+;\\#" <>0123456789aAfF.é\x00')) | st.characters(),
    max_size=60,
)


def _hex_escaped(value: str) -> str:
    return "".join("\\" + format(byte, "02x") for byte in value.encode())


def _canonical(dn: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    """A parsed DN spelled back: numeric OIDs, every value byte hex-escaped, RFC 4514 order."""
    return ",".join("+".join(f"{oid}={_hex_escaped(value)}" for oid, value in rdn) for rdn in reversed(dn))


@settings(max_examples=400, deadline=None)
@given(_DN_TEXT)
def test_any_text_is_a_dn_or_a_syntax_error(text: str) -> None:
    parsed: tuple[tuple[tuple[str, str], ...], ...] | DNSyntaxError
    try:
        parsed = parse_dn(text)
    except DNSyntaxError as exc:
        parsed = exc
    if isinstance(parsed, DNSyntaxError):
        assert str(parsed)  # says what is wrong
        return
    # A DN it accepted is a structure it reads back identically from its canonical spelling.
    assert all(oid.replace(".", "").isdigit() for rdn in parsed for oid, _ in rdn)
    assert parse_dn(_canonical(parsed)) == parsed
