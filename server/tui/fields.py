"""The client form's fields, one table per `token_endpoint_auth_method` (RFC 7591 §2, RFC 8705 §2).

The form is drawn from `fields_for(method)`: common fields first, then the method's own, then the
token options. Every method of certbound.authmethods has its entry in METHOD_FIELDS (a test checks);
the selector offers them in the registry's order. Each field
turns what the operator typed into metadata members (`contribution`), and names the members whose
server errors it shows (`members`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from certbound.authmethods import METHODS
from certbound.jose import JWS_ASYMMETRIC_ALGS, JWS_HMAC_ALGS
from certbound.pki.subject import SUBJECT_FIELDS
from certbound.tui.sources import SourceError, read_jwks
from certbound.tui.text import value_text

__all__ = [
    "FLAG_CHOICES",
    "METHOD_FIELDS",
    "Field",
    "FieldError",
    "Kind",
    "fields_for",
    "offered_methods",
    "subject_of",
]


class Kind(Enum):
    TEXT = "text"  # one string
    SECRET = "secret"  # a client secret (hidden while typed)
    WORDS = "words"  # a list of strings, typed space-separated
    FLAG = "flag"  # true / false / the server's default
    CHOICE = "choice"  # one of `choices`, or the server's default
    JSON = "json"  # a JSON value
    KEYS = "keys"  # a JWK Set or PEM file, read when saved
    SUBJECT = "subject"  # which one of SUBJECT_FIELDS, and its value


#: What a FLAG's selector offers; blank means "the server's default".
FLAG_CHOICES = ("yes", "no")


class FieldError(ValueError):
    """What the operator typed cannot become metadata; shown next to the field."""


@dataclass(frozen=True)
class Field:
    member: str
    label: str
    kind: Kind
    hint: str = ""
    choices: tuple[str, ...] = ()
    #: Only when creating (the client_id cannot change).
    create_only: bool = False

    @property
    def members(self) -> tuple[str, ...]:
        """The metadata members this field sets, and whose server errors it shows."""
        if self.kind is Kind.SUBJECT:
            return SUBJECT_FIELDS
        return (self.member,)

    def initial(self, view: dict[str, Any]) -> str:
        """The text the field starts with when editing `view` (printable: escapes shown as such)."""
        value = view.get(self.member)
        if self.kind in (Kind.SECRET, Kind.KEYS) or value is None:
            return ""
        if self.kind is Kind.FLAG:
            return FLAG_CHOICES[0] if value is True else FLAG_CHOICES[1] if value is False else ""
        if self.kind is Kind.JSON:
            return value_text(value) if not isinstance(value, str) else json.dumps(value)
        return value_text(value)

    def contribution(self, raw: str) -> dict[str, Any]:
        """The members `raw` sets (None deletes a member, as in an RFC 7396 merge patch)."""
        text = raw.strip()
        if self.kind is Kind.WORDS:
            return {self.member: text.split() or None}
        if self.kind is Kind.FLAG:
            return {self.member: {"": None, "yes": True, "no": False}[text]}
        if self.kind is Kind.JSON:
            if not text:
                return {self.member: None}
            try:
                return {self.member: json.loads(text)}
            except ValueError as exc:
                raise FieldError(f"not JSON: {exc}") from None
        if self.kind is Kind.KEYS:
            if not text:
                return {}
            try:
                return {self.member: read_jwks(Path(text)), "jwks_uri": None}
            except SourceError as exc:
                raise FieldError(str(exc)) from None
        if self.member == "jwks_uri" and text:
            return {self.member: text, "jwks": None}
        if self.kind is Kind.SECRET:
            return {self.member: raw or None}  # a secret is taken exactly as typed
        return {self.member: text or None}


def subject_of(view: dict[str, Any]) -> tuple[str, str]:
    """The subject field a client registered and its value (the DN field when it has none)."""
    for member in SUBJECT_FIELDS:
        if view.get(member) is not None:
            return member, value_text(view[member])
    return SUBJECT_FIELDS[0], ""


def subject_contribution(member: str, value: str) -> dict[str, Any]:
    """Exactly one subject field (RFC 8705 §2.1.2): the chosen one set, the others removed."""
    text = value.strip()
    return {name: (text or None) if name == member else None for name in SUBJECT_FIELDS}


CLIENT_ID = Field("client_id", "Client ID", Kind.TEXT, "empty: generated", create_only=True)
CLIENT_NAME = Field("client_name", "Name", Kind.TEXT)
SECRET = Field("client_secret", "Secret", Kind.SECRET, "empty: generated (256 bits), else 8+ characters")
SCOPE = Field("scope", "Scope", Kind.TEXT, "space-separated; empty: all")
GRANT_TYPES = Field("grant_types", "Grant types", Kind.WORDS, "space-separated")
REDIRECT_URIS = Field("redirect_uris", "Redirect URIs", Kind.WORDS, "space-separated")
JWKS = Field("jwks", "Keys file", Kind.KEYS, "path of a JWK Set (JSON) or of PEM certificates/keys")
JWKS_URI = Field("jwks_uri", "or jwks_uri", Kind.TEXT, "https URL of the client's JWK Set")
SUBJECT = Field("tls_client_auth_subject", "Subject", Kind.SUBJECT)
OPAQUE = Field("access_token_as_jwt", "JWT access tokens", Kind.FLAG, "no: opaque reference tokens")
CERT_BOUND = Field(
    "tls_client_certificate_bound_access_tokens", "Certificate-bound", Kind.FLAG, "RFC 8705 cnf binding"
)
DPOP_BOUND = Field("dpop_bound_access_tokens", "DPoP-bound", Kind.FLAG, "RFC 9449: proofs required")
FEDERATED_ISSUER = Field("federated_issuer", "Federated issuer", Kind.TEXT, "a configured issuer name")
FEDERATED_CLAIMS = Field("federated_claims", "Claim rules", Kind.JSON, '{"sub": "repo:org/*"}')
SPIFFE_ID = Field("spiffe_id", "SPIFFE ID", Kind.TEXT, "spiffe://trust-domain/path")


def _signing_alg(algs: tuple[str, ...]) -> Field:
    return Field("token_endpoint_auth_signing_alg", "Signing alg", Kind.CHOICE, "empty: any", choices=algs)


#: The fields each method adds between the common ones (RFC 8705 §2.1.2 subject, RFC 7523 keys).
METHOD_FIELDS: dict[str, tuple[Field, ...]] = {
    "client_secret_basic": (SECRET,),
    "client_secret_post": (SECRET,),
    "client_secret_jwt": (SECRET, _signing_alg(JWS_HMAC_ALGS)),
    "private_key_jwt": (JWKS, JWKS_URI, _signing_alg(JWS_ASYMMETRIC_ALGS)),
    "tls_client_auth": (SUBJECT,),
    "self_signed_tls_client_auth": (JWKS, JWKS_URI),
    "none": (),
    "federated_jwt": (FEDERATED_ISSUER, FEDERATED_CLAIMS),
    "spiffe_jwt": (SPIFFE_ID,),
}
_HEAD = (CLIENT_ID, CLIENT_NAME)
_TAIL = (SCOPE, GRANT_TYPES, REDIRECT_URIS, OPAQUE, CERT_BOUND, DPOP_BOUND)


def offered_methods() -> list[str]:
    """The methods the form offers: every method this server implements, in the registry's order."""
    return [method for method in METHODS if method in METHOD_FIELDS]


def fields_for(method: str) -> tuple[Field, ...]:
    return (*_HEAD, *METHOD_FIELDS.get(method, ()), *_TAIL)
