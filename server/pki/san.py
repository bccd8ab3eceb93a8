"""Subject alternative names of a client certificate, matched against registered values
(RFC 8705 §2.1.2: `tls_client_auth_san_dns`, `_san_uri`, `_san_ip`, `_san_email`).

Only the leaf's subjectAltName extension counts (never an issuer's). Comparison rules:
- dNSName: ASCII case-insensitive (RFC 4343), literal: a `*.example.com` entry matches only the
  registered string `*.example.com`, never `a.example.com` (a client identifier is not a host
  name pattern). Registered names must be ASCII (A-labels for IDNs, as certificates carry them).
- uniformResourceIdentifier: exact string equality (RFC 8705 gives no normalization).
- iPAddress: as addresses, so `2001:db8::1` equals `2001:DB8:0:0:0:0:0:1`; IPv4 and IPv6 never
  equal each other, not even an IPv4-mapped IPv6 address: `::ffff:10.0.0.1` matches only a 16-octet
  entry and `10.0.0.1` only a 4-octet one. RFC 5280 §4.2.1.6 makes them different entries, and name
  constraints (§4.2.1.10) constrain the two families separately: a CA barred from 10.0.0.0/8 may
  still certify `::ffff:10.0.0.1`, so treating them as one would let it impersonate `10.0.0.1`.
- rfc822Name: the local part exactly, the domain ASCII case-insensitively (RFC 5280 §4.2.1.6).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from cryptography import x509

__all__ = ["SAN_KINDS", "san_matches", "validate_san"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _subject_alt_names(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _parse_ip(value: str) -> _IPAddress:
    # A zone index ("fe80::1%eth0") names an interface of the host, not a certificate's address.
    if "%" in value:
        raise ValueError("an IP address with a zone index")
    return ipaddress.ip_address(value)


def _email_key(value: str) -> tuple[str, str] | None:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return None
    return local, domain.lower()


def _validate_dns(value: str) -> None:
    if not value.isascii() or not value or " " in value:
        raise ValueError("must be an ASCII DNS name (A-labels for internationalized names)")


def _validate_uri(value: str) -> None:
    scheme, colon, rest = value.partition(":")
    if not colon or not rest or not scheme[:1].isalpha():
        raise ValueError("must be an absolute URI")


def _validate_ip(value: str) -> None:
    try:
        _parse_ip(value)
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


def _validate_email(value: str) -> None:
    if _email_key(value) is None:
        raise ValueError("must be an email address (local@domain)")


def _match_dns(registered: str, names: x509.SubjectAlternativeName) -> bool:
    expected = registered.lower()
    return any(
        name.isascii() and name.lower() == expected for name in names.get_values_for_type(x509.DNSName)
    )


def _match_uri(registered: str, names: x509.SubjectAlternativeName) -> bool:
    return registered in names.get_values_for_type(x509.UniformResourceIdentifier)


def _match_ip(registered: str, names: x509.SubjectAlternativeName) -> bool:
    try:
        expected = _parse_ip(registered)
    except ValueError:
        return False
    # get_values_for_type(IPAddress) also yields networks (from name constraints); keep addresses.
    return any(
        isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address) and address == expected
        for address in names.get_values_for_type(x509.IPAddress)
    )


def _match_email(registered: str, names: x509.SubjectAlternativeName) -> bool:
    expected = _email_key(registered)
    return expected is not None and any(
        _email_key(name) == expected for name in names.get_values_for_type(x509.RFC822Name)
    )


_Matcher = Callable[[str, x509.SubjectAlternativeName], bool]

#: Registered metadata name -> (validator raising ValueError, matcher).
SAN_KINDS: dict[str, tuple[Callable[[str], None], _Matcher]] = {
    "tls_client_auth_san_dns": (_validate_dns, _match_dns),
    "tls_client_auth_san_uri": (_validate_uri, _match_uri),
    "tls_client_auth_san_ip": (_validate_ip, _match_ip),
    "tls_client_auth_san_email": (_validate_email, _match_email),
}


def validate_san(field: str, value: str) -> None:
    """Raise ValueError when `value` cannot be a registered value of the SAN field `field`."""
    SAN_KINDS[field][0](value)


def san_matches(field: str, registered: str, cert: x509.Certificate) -> bool:
    """Whether the leaf `cert` has a subjectAltName entry of `field`'s kind equal to `registered`."""
    try:
        names = _subject_alt_names(cert)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        # A malformed extension (cryptography parses extensions lazily) matches nothing.
        return False
    return names is not None and SAN_KINDS[field][1](registered, names)
