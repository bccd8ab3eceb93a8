"""What the client form reads from files: a certificate's subject for a tls_client_auth client
(RFC 8705 §2.1.2), and a JWK Set for private_key_jwt / self_signed_tls_client_auth (RFC 7517 §5),
from a JSON file or converted from PEM certificates and keys (only public keys ever leave here).

A value read from a certificate is checked with the server's own matcher before it is offered, so
what the operator registers is what will match that certificate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certbound.jose import PublicKey, public_jwk, rfc7638_thumbprint
from certbound.pki.subject import SUBJECT_DN, subject_matches

__all__ = ["SourceError", "read_jwks", "read_subject"]

#: Larger files are not read: a certificate chain or a JWK Set is a few kilobytes.
MAX_FILE_BYTES = 1024 * 1024

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)
_SAN_TYPES: dict[str, type[x509.GeneralName]] = {
    "tls_client_auth_san_dns": x509.DNSName,
    "tls_client_auth_san_uri": x509.UniformResourceIdentifier,
    "tls_client_auth_san_ip": x509.IPAddress,
    "tls_client_auth_san_email": x509.RFC822Name,
}


class SourceError(ValueError):
    """The file cannot give what was asked; the message says why."""


def _read(path: Path) -> bytes:
    try:
        with path.expanduser().open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SourceError(f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB")
    return data


def _certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file (the leaf, in the usual chain order)."""
    data = _read(path)
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        raise SourceError(f"{path} holds no PEM certificate") from None


def read_subject(path: Path, member: str) -> str:
    """The value of the subject field `member` (tls_client_auth_subject_dn or a SAN field) that
    the certificate in `path` will match: its subject as an RFC 4514 string (most significant
    RDN last, as RFC 4514 §2.1 writes it), or its first SAN of that kind."""
    cert = _certificate(path)
    if member == SUBJECT_DN:
        value = cert.subject.rfc4514_string()
        if not value:
            raise SourceError("the certificate's subject is empty: register a SAN field instead")
    else:
        try:
            extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            raise SourceError("the certificate has no subjectAltName extension") from None
        except ValueError as exc:
            raise SourceError(f"the certificate's extensions do not parse: {exc}") from None
        names = extension.value.get_values_for_type(_SAN_TYPES[member])  # type: ignore[arg-type]
        if not names:
            raise SourceError(f"the certificate has no subjectAltName of the kind {member}")
        value = str(names[0])  # an IPAddress comes as an ipaddress object
    if not subject_matches(member, value, cert):
        raise SourceError(f"the certificate cannot be matched by {member} (a value that is not text?)")
    return value


def _pem_public_keys(data: bytes, path: Path) -> list[object]:
    keys: list[object] = []
    for block in _PEM_BLOCK.finditer(data):
        label, pem = block.group(1), block.group(0)
        try:
            if label == b"CERTIFICATE":
                keys.append(x509.load_pem_x509_certificate(pem).public_key())
            elif label.endswith(b"PUBLIC KEY"):
                keys.append(serialization.load_pem_public_key(pem))
            elif label.endswith(b"PRIVATE KEY"):
                # Converted to its public half here; the private key is never sent.
                keys.append(serialization.load_pem_private_key(pem, password=None).public_key())
        except TypeError:
            raise SourceError(
                f"{path}: an encrypted private key; give the certificate or public key"
            ) from None
        except ValueError as exc:
            raise SourceError(f"{path}: a {label.decode()} block does not parse: {exc}") from None
    if not keys:
        raise SourceError(f"{path} holds no certificate or key in PEM")
    return keys


def read_jwks(path: Path) -> dict[str, Any]:
    """A JWK Set from a JSON file (as it is: the server validates it), or built from the public
    keys of the PEM certificates and keys in the file, each with its RFC 7638 thumbprint as kid."""
    data = _read(path)
    if b"-----BEGIN " in data:
        jwks = []
        for key in _pem_public_keys(data, path):
            if not isinstance(key, PublicKey):
                raise SourceError(f"{path}: a {type(key).__name__} cannot be a client key")
            try:
                jwk = public_jwk(key)
            except KeyError as exc:
                raise SourceError(f"{path}: the curve {exc} is not supported") from None
            jwks.append({**jwk, "kid": rfc7638_thumbprint(jwk)})
        return {"keys": jwks}
    try:
        value = json.loads(data)
    except ValueError:
        raise SourceError(f"{path} is neither JSON nor PEM") from None
    if not isinstance(value, dict):
        raise SourceError(f"{path} does not hold a JSON object (a JWK Set)")
    return value
