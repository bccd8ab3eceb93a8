"""Which peers may forward a client certificate in a header (RFC 9440 §4, SPEC §8).

Anyone can send a `Client-Cert` header, so a header counts only from a trusted proxy: a peer whose
address is in one of the trusted networks and, when certificate pins are configured
(`--trusted-proxy-cert-sha256`), whose own TLS client certificate on that connection has one of
the pinned SHA-256 fingerprints. An address alone is weak (any process on the proxy's host, or
anyone who can spoof or share it, qualifies); a pin makes the proxy prove possession of its key.

From a trusted proxy the header wins over the connection's certificate (the proxy's own), and no
header means no client certificate. From anyone else the header is ignored (and logged) and the
connection's own certificate, if any, is the client's. Only the configured format is ever read.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import string
from collections.abc import Iterable

from multidict import MultiMapping

from certbound.proxyheaders import HEADERS, read_forwarded_certificate
from certbound.tls.peer import PeerCertificates

__all__ = ["TrustedProxies", "log_wide_networks", "peer_ip", "sha256_fingerprint"]

log = logging.getLogger("certbound.proxy")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHA256_HEX_DIGITS = 64


def sha256_fingerprint(value: object) -> bytes:
    """A certificate's SHA-256 fingerprint given as 64 hex digits, in either case, with or without
    the colons `openssl x509 -noout -fingerprint -sha256` prints. ValueError otherwise."""
    if isinstance(value, bytes) and len(value) == _SHA256_HEX_DIGITS // 2:
        return value
    if not isinstance(value, str):
        raise ValueError("expected a SHA-256 fingerprint")
    digits = value.strip().replace(":", "")
    if len(digits) != _SHA256_HEX_DIGITS or not set(digits) <= set(string.hexdigits):
        raise ValueError(f"not a SHA-256 fingerprint (64 hex digits): {value!r}")
    return bytes.fromhex(digits)


def peer_ip(host: object) -> Address | None:
    """The IP address of a peer as a transport or an ASGI server reports it; None for anything
    else (a Unix socket, a closed transport): never a trusted proxy."""
    if not isinstance(host, str):
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The proxies whose forwarded-certificate headers count, and the one header format read.

    `networks` are CIDRs (or addresses); `cert_sha256` optional pins of the proxies' own TLS
    client certificates (see sha256_fingerprint). ValueError for anything unusable.
    """

    __slots__ = ("header_format", "header_names", "networks", "pins")

    def __init__(
        self,
        networks: Iterable[str | Network],
        *,
        header_format: str = "rfc9440",
        cert_sha256: Iterable[str | bytes] = (),
    ) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(network, strict=False) if isinstance(network, str) else network
            for network in networks
        )
        if header_format not in HEADERS:
            raise ValueError(f"unknown client certificate header format {header_format!r}")
        self.header_format = header_format
        self.header_names = HEADERS[header_format]
        self.pins = frozenset(sha256_fingerprint(pin) for pin in cert_sha256)
        if self.pins and not self.networks:
            raise ValueError("proxy certificate pins need at least one trusted proxy network")

    def wide_networks(self) -> tuple[Network, ...]:
        """Trusted ranges of more than one address: every host in them may forward certificates
        (unless pinned), which the operator should know at start-up."""
        return tuple(network for network in self.networks if network.num_addresses > 1)

    def _untrusted_reason(self, peer: object, connection_certificate: PeerCertificates | None) -> str | None:
        address = peer_ip(peer)
        if address is None or not any(address in network for network in self.networks):
            return f"{address or '?'} is not a trusted proxy address"
        if self.pins and (
            connection_certificate is None
            or hashlib.sha256(connection_certificate.leaf_der).digest() not in self.pins
        ):
            return f"the connection from {address} has no pinned proxy certificate"
        return None

    def client_certificate(
        self,
        peer: object,
        connection_certificate: PeerCertificates | None,
        headers: MultiMapping[str],
    ) -> PeerCertificates | None:
        """The client's certificate on a connection from `peer` (its host as the transport or the
        ASGI server reports it) that presented `connection_certificate` itself: the forwarded one
        from a trusted proxy (InvalidRequestError when malformed), else the connection's own."""
        reason = self._untrusted_reason(peer, connection_certificate)
        if reason is None:
            return read_forwarded_certificate(self.header_format, headers)
        if any(name in headers for name in self.header_names):
            log.warning("ignoring the %s header: %s", self.header_names[0], reason)
        return connection_certificate


def log_wide_networks(proxies: TrustedProxies | None, logger: logging.Logger = log) -> None:
    """At start-up: warn about each trusted range that holds more than one address."""
    if proxies is None:
        return
    advice = (
        " (pinned: only with a --trusted-proxy-cert-sha256 certificate)"
        if proxies.pins
        else ("; pin the proxy's own certificate with --trusted-proxy-cert-sha256")
    )
    for network in proxies.wide_networks():
        logger.warning(
            "trusted proxy range %s holds %d addresses: any host in it may forward client certificates%s",
            network,
            network.num_addresses,
            advice,
        )
