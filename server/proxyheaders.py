"""Client certificates forwarded in a header by a TLS-terminating proxy (RFC 9440 §2, SPEC §8):
parsing only. Whether a peer may forward one is certbound.proxytrust's business.

Framework-free: the token server (aiohttp), the resource library's aiohttp and ASGI glue all read
headers through `read_forwarded_certificate`. Headers must be a case-insensitive multi-mapping
(aiohttp's `request.headers`, or a multidict.CIMultiDict built from ASGI's header list).
A header that does not parse, repeats, or carries more than `MAX_CHAIN` intermediates is
InvalidRequestError (400 `invalid_request`). The cost is bounded by the HTTP server's header-size
limit: the chain length is checked before any certificate is parsed.

Formats (`HEADER_FORMATS`, the values of `--client-cert-header`):
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
from collections.abc import Callable, Sequence
from urllib.parse import unquote

from cryptography import x509
from multidict import MultiMapping

from certbound.errors import InvalidRequestError
from certbound.tls.peer import PeerCertificates

__all__ = ["HEADERS", "HEADER_FORMATS", "MAX_CHAIN", "read_forwarded_certificate"]

#: Intermediates accepted in a header; a longer chain is refused.
MAX_CHAIN = 5

_Headers = MultiMapping[str]

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
HEADER_FORMATS = tuple(HEADERS)


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
