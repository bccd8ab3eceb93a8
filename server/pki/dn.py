"""RFC 4514 distinguished names, parsed and compared as names (RFC 8705 §2.1.2, SPEC §8).

`tls_client_auth_subject_dn` is registered as an RFC 4514 string and must match the subject of the
client's certificate. Two spellings of one name must match, so both sides become the same
structure: a tuple of RDNs in ASN.1 order (the string lists them in reverse, RFC 4514 §2.1), each RDN
a sorted tuple of (dotted OID, value) pairs (a multi-valued RDN is a set, X.501 §9.3). The rules:

- attribute types are case-insensitive, and a numeric OID equals its short name (`2.5.4.3` = `CN`);
- escapes are decoded (`\\,` = `\\2C`; consecutive hex pairs are one UTF-8 sequence, RFC 4514 §2.4);
- whitespace around `,`, `+` and `=` is ignored (a leading or trailing space that belongs to a value
  must be escaped, RFC 4514 §2.4);
- RDN order is significant; attribute order inside one multi-valued RDN is not;
- values are compared as Unicode text (NFC-normalized, so canonically equivalent text is equal),
  whatever ASN.1 string type the certificate used (PrintableString, UTF8String, BMPString...).
  Values are otherwise compared exactly: no case folding.

A `#`-prefixed value (the BER encoding in hex, RFC 4514 §2.4) is accepted when it encodes a string
type; other encodings cannot be compared as text and are refused.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from cryptography import x509

__all__ = ["DNSyntaxError", "DistinguishedName", "looks_reversed", "name_matches", "parse_dn", "structure_of"]

#: One RDN: (dotted OID, value) pairs, sorted, so that attribute order does not matter.
RDN = tuple[tuple[str, str], ...]
#: RDNs in ASN.1 order (the most significant, e.g. C or DC=com, first).
DistinguishedName = tuple[RDN, ...]


class DNSyntaxError(ValueError):
    """The string is not an RFC 4514 distinguished name this server can compare."""


# Short names: RFC 4514 §3, plus the ones OpenSSL and cryptography print for common attributes
# (RFC 4519, RFC 2985 emailAddress, X.520), so a DN copied from `openssl x509 -subject` parses.
_SHORT_NAMES = {
    "cn": "2.5.4.3",
    "commonname": "2.5.4.3",
    "sn": "2.5.4.4",
    "surname": "2.5.4.4",
    "serialnumber": "2.5.4.5",
    "c": "2.5.4.6",
    "countryname": "2.5.4.6",
    "l": "2.5.4.7",
    "localityname": "2.5.4.7",
    "st": "2.5.4.8",
    "stateorprovincename": "2.5.4.8",
    "street": "2.5.4.9",
    "streetaddress": "2.5.4.9",
    "o": "2.5.4.10",
    "organizationname": "2.5.4.10",
    "ou": "2.5.4.11",
    "organizationalunitname": "2.5.4.11",
    "title": "2.5.4.12",
    "businesscategory": "2.5.4.15",
    "postalcode": "2.5.4.17",
    "name": "2.5.4.41",
    "gn": "2.5.4.42",
    "givenname": "2.5.4.42",
    "initials": "2.5.4.43",
    "generationqualifier": "2.5.4.44",
    "x500uniqueidentifier": "2.5.4.45",
    "dnqualifier": "2.5.4.46",
    "pseudonym": "2.5.4.65",
    "organizationidentifier": "2.5.4.97",
    "uid": "0.9.2342.19200300.100.1.1",
    "userid": "0.9.2342.19200300.100.1.1",
    "dc": "0.9.2342.19200300.100.1.25",
    "domaincomponent": "0.9.2342.19200300.100.1.25",
    "emailaddress": "1.2.840.113549.1.9.1",
    "e": "1.2.840.113549.1.9.1",
    "jurisdictionc": "1.3.6.1.4.1.311.60.2.1.3",
    "jurisdictionst": "1.3.6.1.4.1.311.60.2.1.2",
    "jurisdictionl": "1.3.6.1.4.1.311.60.2.1.1",
}

# RFC 4512 §1.4: descr = keystring; numericoid = number 1*( DOT number ), no leading zeros.
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NUMERICOID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+")
_HEX = "0123456789abcdefABCDEF"
# RFC 4514 §3: `escaped` and `special` characters may follow a backslash.
_ESCAPABLE = frozenset(' "#+,;<=>\\')
# RFC 4514 §3: characters a value may not contain unescaped (NUL, '"', ';', '<', '>'); '\\', ','
# and '+' are handled by the parser itself.
_MUST_ESCAPE = frozenset('\x00";<>')

# ASN.1 universal string tags (X.680 §8.4) and how their contents decode to text.
_STRING_TAGS = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString (T61): in practice ISO 8859-1, as OpenSSL treats it
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}


def _text(value: str) -> str:
    return unicodedata.normalize("NFC", value)


class _Parser:
    """A single pass over the string; `pos` only moves forward."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> DNSyntaxError:
        return DNSyntaxError(f"{message} at position {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def parse(self) -> DistinguishedName:
        self.skip_spaces()
        if not self.peek():
            return ()
        rdns: list[RDN] = []
        while True:
            rdns.append(self.rdn())
            if not self.peek():
                break
            self.pos += 1  # the ',' that rdn() stopped at
        # The string starts with the least significant RDN (RFC 4514 §2.1).
        return tuple(reversed(rdns))

    def rdn(self) -> RDN:
        pairs: list[tuple[str, str]] = []
        while True:
            pairs.append(self.attribute())
            separator = self.peek()
            if separator == "+":
                self.pos += 1
                continue
            if separator in (",", ""):
                return tuple(sorted(pairs))
            raise self.error(f"unexpected {separator!r}")

    def attribute(self) -> tuple[str, str]:
        self.skip_spaces()
        start = self.pos
        while self.peek() not in ("", "=", " ", ",", "+"):
            self.pos += 1
        oid = _attribute_oid(self.text[start : self.pos])
        if oid is None:
            raise self.error(f"unknown or malformed attribute type {self.text[start : self.pos]!r}")
        self.skip_spaces()
        if self.peek() != "=":
            raise self.error("expected '='")
        self.pos += 1
        self.skip_spaces()
        value = self.hex_value() if self.peek() == "#" else self.string_value()
        self.skip_spaces()
        return oid, _text(value)

    def hex_value(self) -> str:
        self.pos += 1
        start = self.pos
        while self.peek() and self.peek() in _HEX:
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits or len(digits) % 2:
            raise self.error("a '#' value needs an even number of hex digits")
        return _decode_ber_string(bytes.fromhex(digits))

    def string_value(self) -> str:
        encoded = bytearray()
        # Length of `encoded` up to its last escaped or non-space character: unescaped trailing
        # spaces are not part of the value (RFC 4514 §2.4).
        significant = 0
        while True:
            char = self.peek()
            if char in ("", ",", "+"):
                break
            if char == "\\":
                self.pos += 1
                encoded += self.escape()
                significant = len(encoded)
                continue
            if char in _MUST_ESCAPE:
                raise self.error(f"{char!r} must be escaped")
            encoded += char.encode("utf-8", "surrogatepass")
            if char != " ":
                significant = len(encoded)
            self.pos += 1
        try:
            return bytes(encoded[:significant]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("escaped bytes are not UTF-8") from None

    def escape(self) -> bytes:
        first = self.peek()
        if first in _ESCAPABLE:
            self.pos += 1
            return first.encode("ascii")
        pair = self.text[self.pos : self.pos + 2]
        if len(pair) == 2 and all(digit in _HEX for digit in pair):
            self.pos += 2
            return bytes.fromhex(pair)
        raise self.error("'\\' must be followed by a special character or two hex digits")


def _attribute_oid(attribute_type: str) -> str | None:
    if _NUMERICOID.fullmatch(attribute_type):
        return attribute_type
    if _DESCR.fullmatch(attribute_type):
        return _SHORT_NAMES.get(attribute_type.lower())
    return None


def _decode_ber_string(der: bytes) -> str:
    """The text of a DER-encoded ASN.1 string (tag, definite length, contents: nothing else)."""
    if len(der) < 2 or der[0] not in _STRING_TAGS:
        raise DNSyntaxError("a '#' value must encode an ASN.1 string type")
    length, offset = der[1], 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or len(der) < 2 + size:
            raise DNSyntaxError("a '#' value has a malformed length")
        length, offset = int.from_bytes(der[2 : 2 + size], "big"), 2 + size
    if len(der) != offset + length:
        raise DNSyntaxError("a '#' value's length does not match its contents")
    try:
        return der[offset:].decode(_STRING_TAGS[der[0]])
    except UnicodeDecodeError:
        raise DNSyntaxError("a '#' value's contents do not decode as its string type") from None


@lru_cache(maxsize=1024)
def parse_dn(text: str) -> DistinguishedName:
    """Parse an RFC 4514 string; raises DNSyntaxError. An empty string is the empty name `()`."""
    return _Parser(text).parse()


def structure_of(name: x509.Name) -> DistinguishedName | None:
    """The comparable structure of a certificate's name; None when a value is not text (a BIT
    STRING such as x500UniqueIdentifier), which no registered string is taken to match."""
    rdns: list[RDN] = []
    for rdn in name.rdns:
        pairs: list[tuple[str, str]] = []
        for attribute in rdn:
            if not isinstance(attribute.value, str):
                return None
            pairs.append((attribute.oid.dotted_string, _text(attribute.value)))
        rdns.append(tuple(sorted(pairs)))
    return tuple(rdns)


_COUNTRY = "2.5.4.6"
_DOMAIN_COMPONENT = "0.9.2342.19200300.100.1.25"
_COMMON_NAME = "2.5.4.3"


def looks_reversed(text: str) -> bool:
    """Whether an RFC 4514 string names its RDNs in ASN.1 order, as `openssl x509 -subject` prints
    them (`C=US, O=Acme, CN=svc`, `DC=com, DC=acme, CN=svc`): its first RDN is a C or DC and its
    last a CN. Still a valid DN, but the reverse of the RFC 4514 string of a certificate whose
    subject reads that way, so it will not match it (RFC 4514 §2.1 lists the last RDN first)."""
    try:
        dn = parse_dn(text)
    except DNSyntaxError:
        return False
    if len(dn) < 2:
        return False
    written_first, written_last = dn[-1], dn[0]  # parse_dn returns ASN.1 order
    return any(oid in (_COUNTRY, _DOMAIN_COMPONENT) for oid, _ in written_first) and any(
        oid == _COMMON_NAME for oid, _ in written_last
    )


def name_matches(registered: str, name: x509.Name) -> bool:
    """Whether the certificate name `name` is the registered RFC 4514 DN (never raises for a
    malformed registration: such a DN matches nothing)."""
    try:
        expected = parse_dn(registered)
    except DNSyntaxError:
        return False
    return bool(expected) and structure_of(name) == expected
