"""Where a `jwks_uri` may point (SSRF guard; IANA IPv4 and IPv6 Special-Purpose Address Registries).

A client chooses its jwks_uri, so without a guard it could make the server fetch from the server's
own network. `is_forbidden_address` refuses every address that is not a plain globally reachable
unicast address, and every address that embeds one that is not:

- IPv4: the special-purpose blocks (RFC 6890 and successors: this network, private, shared CGN,
  loopback, link-local, IETF protocol assignments, documentation, benchmarking, the deprecated 6to4
  relay anycast, multicast, reserved and broadcast), whatever the Python version thinks;
- IPv6: anything outside 2000::/3, the only block IANA allocates for global unicast. That refuses
  loopback, unspecified, IPv4-compatible (::/96), IPv4-mapped (::ffff:0:0/96), IPv4-translated
  (::ffff:0:0:0/96), discard-only, ULA, link-local, site-local (fec0::/10), multicast, SRv6 SIDs,
  and the local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215: its mapping is the network's own);
  inside 2000::/3, the IETF protocol assignments 2001::/23 (Teredo and benchmarking included) and
  both documentation prefixes;
- an address of the NAT64 well-known prefix 64:ff9b::/96 (RFC 6052) or of 6to4 (2002::/16) is
  judged by the IPv4 address it embeds: DNS64 synthesises exactly these for public IPv4-only hosts,
  and RFC 6052 §3.1 forbids the well-known prefix for non-global IPv4 addresses.

`validate_jwks_uri` checks a URL at registration; names are resolved and checked again at fetch
time (certbound.jwks.fetch), and the connection goes to the address that was checked.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from certbound.errors import InvalidClientMetadataError

__all__ = ["is_forbidden_address", "validate_jwks_uri"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORBIDDEN_V4 = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network" (RFC 791)
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (RFC 3927)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890), anycast services included
        "192.0.2.0/24",  # documentation (RFC 5737)
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the limited broadcast address
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_FORBIDDEN_V6 = tuple(
    ipaddress.IPv6Network(block)
    for block in (
        "2001::/23",  # IETF protocol assignments (RFC 2928): Teredo, benchmarking, ORCHID...
        "2001:db8::/32",  # documentation (RFC 3849)
        "3fff::/20",  # documentation (RFC 9637)
    )
)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


def is_forbidden_address(address: IPAddress) -> bool:
    """Whether the server must not fetch from `address` (see the module docstring)."""
    if isinstance(address, ipaddress.IPv4Address):
        return not address.is_global or any(address in block for block in _FORBIDDEN_V4)
    if address in _NAT64_WELL_KNOWN:
        return is_forbidden_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        return is_forbidden_address(address.sixtofour)
    return address not in _GLOBAL_UNICAST or any(address in block for block in _FORBIDDEN_V6)


def _literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally; ValueError for forms a resolver might still map
    onto an address (`127.1`, `2130706433`, octal), so those never pass as names."""
    bare = host.strip("[]")
    if ":" in bare or bare.replace(".", "").isdigit():
        return ipaddress.ip_address(bare.split("%", 1)[0])
    return None


def validate_jwks_uri(value: object, *, allow_private: bool) -> str:
    """Registration check of `jwks_uri`: an absolute https URL; a literal address must be public
    unless `allow_private` (names are checked again, resolved, at fetch time)."""
    if not isinstance(value, str):
        raise InvalidClientMetadataError("jwks_uri must be a string")
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidClientMetadataError("jwks_uri is not a valid URL") from None
    if parts.scheme != "https" or not host or port == 0:
        raise InvalidClientMetadataError("jwks_uri must be an https URL")
    if parts.fragment or parts.username is not None or parts.password is not None:
        raise InvalidClientMetadataError("jwks_uri must not carry a fragment or user information")
    try:
        literal = _literal_address(host)
    except ValueError:
        raise InvalidClientMetadataError(f"jwks_uri host {host} is not a valid address") from None
    if literal is not None and not allow_private and is_forbidden_address(literal):
        raise InvalidClientMetadataError(f"jwks_uri host {host} is not a public address")
    return value
