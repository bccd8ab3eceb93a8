"""Client certificates forwarded by a TLS-terminating proxy (RFC 9440 §2, SPEC §8).

Behind a proxy the TLS peer is the proxy, so the client's certificate travels in a header. This
middleware, installed only when `--trusted-proxy` is configured, reads the one header format of
`--client-cert-header` and sets the request's client certificate (certbound.clientcert) for
everything downstream:

- from a `--trusted-proxy` address the header wins over the TLS peer certificate (the proxy's
  own); a request from a trusted proxy without the header has no client certificate;
- from any other peer such headers are ignored (and logged): anyone can send them;
- a header that does not parse, repeats, or carries more than `MAX_CHAIN` intermediates is
  400 `invalid_request`.

Formats:
- `rfc9440`: `Client-Cert` is a structured-field Byte Sequence (RFC 8941 §3.3.5) `:base64(DER):`;
  `Client-Cert-Chain` a List of them (RFC 9440 §2.3; it may span several field lines).
- `xfcc`: Envoy's `X-Forwarded-Client-Cert`: `,`-separated elements of `;`-separated `key=value`
  pairs, values optionally double-quoted. The last element was added by the nearest proxy and is
  the only one that counts; its `Cert` is the URL-encoded PEM leaf, `Chain` the URL-encoded PEM
  chain (Envoy includes the leaf; it is dropped), and `Hash`, when present, must be the hex SHA-256
  of the leaf's DER.
- `nginx`: `X-SSL-Client-Cert` is nginx's `$ssl_client_escaped_cert`, the URL-encoded PEM leaf
  (empty when the client sent none).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Sequence
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from cryptography import x509
from multidict import CIMultiDictProxy

from certbound.clientcert import CLIENT_CERTIFICATE_KEY
from certbound.config import Settings
from certbound.errors import InvalidRequestError
from certbound.tls.peer import PeerCertificates

__all__ = ["HEADERS", "MAX_CHAIN", "proxy_certificate_middleware", "read_forwarded_certificate"]

log = logging.getLogger("certbound.proxy")

#: Intermediates accepted in a header; a longer chain is refused.
MAX_CHAIN = 5

_Headers = CIMultiDictProxy[str]
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_CLIENT_CERT = "Client-Cert"
_CLIENT_CERT_CHAIN = "Client-Cert-Chain"
_XFCC = "X-Forwarded-Client-Cert"
_NGINX = "X-SSL-Client-Cert"

#: `--client-cert-header` value -> the headers that format uses.
HEADERS: dict[str, tuple[str, ...]] = {
    "rfc9440": (_CLIENT_CERT, _CLIENT_CERT_CHAIN),
    "xfcc": (_XFCC,),
    "nginx": (_NGINX,),
}


def _single(headers: _Headers, name: str) -> str | None:
    values = headers.getall(name, [])
    if len(values) > 1:
        raise InvalidRequestError(f"more than one {name} header")
    return values[0] if values else None


def _certificates(leaf: x509.Certificate, chain: Sequence[x509.Certificate], name: str) -> PeerCertificates:
    peer = PeerCertificates.from_certs(leaf, chain)
    if len(peer.chain) > MAX_CHAIN:
        raise InvalidRequestError(f"{name}: more than {MAX_CHAIN} intermediate certificates")
    return peer


def _sf_binary(member: str, name: str) -> bytes:
    """RFC 8941 §3.3.5 Byte Sequence: `:` base64 `:` (padding optional when parsing)."""
    text = member.strip(" \t")
    if len(text) < 2 or text[0] != ":" or text[-1] != ":":
        raise InvalidRequestError(f"{name} is not a structured-field byte sequence")
    body = text[1:-1]
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{name} is not valid base64") from None


def _der_certificate(data: bytes, name: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidRequestError(f"{name} is not a DER certificate") from None


def _pem_certificates(encoded: str, name: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(unquote(encoded, errors="strict").encode("ascii"))
    except (UnicodeError, ValueError):
        raise InvalidRequestError(f"{name} is not a URL-encoded PEM certificate") from None
    return certificates


def _read_rfc9440(headers: _Headers) -> PeerCertificates | None:
    value = _single(headers, _CLIENT_CERT)
    members = [member for line in headers.getall(_CLIENT_CERT_CHAIN, []) for member in line.split(",")]
    if value is None:
        if members:
            raise InvalidRequestError(f"{_CLIENT_CERT_CHAIN} without {_CLIENT_CERT}")
        return None
    leaf = _der_certificate(_sf_binary(value, _CLIENT_CERT), _CLIENT_CERT)
    if len(members) > MAX_CHAIN:
        raise InvalidRequestError(f"{_CLIENT_CERT_CHAIN}: more than {MAX_CHAIN} certificates")
    chain = [
        _der_certificate(_sf_binary(member, _CLIENT_CERT_CHAIN), _CLIENT_CERT_CHAIN) for member in members
    ]
    return _certificates(leaf, chain, _CLIENT_CERT_CHAIN)


def _xfcc_elements(value: str) -> list[dict[str, str]]:
    """Split an XFCC value into elements of key/value pairs, honouring double quotes."""
    elements: list[dict[str, str]] = []
    pairs: list[str] = []
    token: list[str] = []
    quoted = escaped = False
    for char in value + ",":
        if escaped:
            token.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted or char not in ",;":
            token.append(char)
        else:
            pairs.append("".join(token).strip(" \t"))
            token = []
            if char == ",":
                elements.append(_xfcc_pairs(pairs))
                pairs = []
    if quoted:
        raise InvalidRequestError(f"{_XFCC} has an unterminated quoted value")
    return elements


def _xfcc_pairs(pairs: list[str]) -> dict[str, str]:
    element: dict[str, str] = {}
    for pair in pairs:
        if not pair:
            continue
        key, equals, value = pair.partition("=")
        key = key.strip(" \t").lower()
        if not equals or not key:
            raise InvalidRequestError(f"{_XFCC} has a malformed key=value pair")
        if key in element:
            raise InvalidRequestError(f"{_XFCC} repeats {key} in one element")
        element[key] = value.strip(" \t")
    return element


def _read_xfcc(headers: _Headers) -> PeerCertificates | None:
    value = _single(headers, _XFCC)
    if value is None:
        return None
    nearest = _xfcc_elements(value)[-1]
    if "cert" not in nearest:
        return None
    leaves = _pem_certificates(nearest["cert"], f"{_XFCC} Cert")
    if len(leaves) != 1:
        raise InvalidRequestError(f"{_XFCC} Cert must hold exactly one certificate")
    leaf = leaves[0]
    chain = _pem_certificates(nearest["chain"], f"{_XFCC} Chain") if "chain" in nearest else []
    peer = _certificates(leaf, chain, _XFCC)
    expected = nearest.get("hash")
    if expected is not None and expected.lower() != hashlib.sha256(peer.leaf_der).hexdigest():
        raise InvalidRequestError(f"{_XFCC} Hash does not match its Cert")
    return peer


def _read_nginx(headers: _Headers) -> PeerCertificates | None:
    value = _single(headers, _NGINX)
    if value is None or not value.strip():
        return None
    certificates = _pem_certificates(value.strip(), _NGINX)
    return _certificates(certificates[0], certificates[1:], _NGINX)


_READERS: dict[str, Callable[[_Headers], PeerCertificates | None]] = {
    "rfc9440": _read_rfc9440,
    "xfcc": _read_xfcc,
    "nginx": _read_nginx,
}


def read_forwarded_certificate(header_format: str, headers: _Headers) -> PeerCertificates | None:
    """The client certificate a trusted proxy forwarded in `header_format`, None when it forwarded
    none; InvalidRequestError when the header is malformed."""
    return _READERS[header_format](headers)


def _peer_address(request: web.Request) -> _Address | None:
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None  # a Unix socket, or a closed transport: never a trusted proxy
    try:
        address = ipaddress.ip_address(peername[0].split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        return address.ipv4_mapped
    return address


def proxy_certificate_middleware(settings: Settings) -> Middleware:
    """The middleware for `settings.trusted_proxy` and `settings.client_cert_header`."""
    networks: tuple[_Network, ...] = settings.trusted_proxy
    header_format = settings.client_cert_header
    names = HEADERS[header_format]

    @web.middleware
    async def forwarded_client_certificate(request: web.Request, handler: Handler) -> web.StreamResponse:
        address = _peer_address(request)
        if address is not None and any(address in network for network in networks):
            request[CLIENT_CERTIFICATE_KEY] = read_forwarded_certificate(header_format, request.headers)
        elif any(name in request.headers for name in names):
            log.warning(
                "ignoring the %s header from %s: not a --trusted-proxy address", names[0], address or "?"
            )
        return await handler(request)

    return forwarded_client_certificate
