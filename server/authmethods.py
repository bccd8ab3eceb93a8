"""The facts of every `token_endpoint_auth_method` (OIDC Core §9, RFC 8705 §2, RFC 7523 §2.2,
SPEC §5 and §13), in one registry every other list derives from.

Which methods exist, how each one's credential travels in the request, whether the server keeps a
secret for it, whether it authenticates with the TLS client certificate, which
`client_assertion_type` it expects, whether a client may register it for itself (RFC 7591) and
whether the server offers it only with `--federation`: discovery's lists, the CLI's choices, the
registration checks, the TUI's method selector and the implementations in certbound.clientauth all
read it from here, so adding a method is one entry (plus its implementation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "JWT_BEARER",
    "JWT_SPIFFE",
    "METHODS",
    "MTLS_METHODS",
    "SECRET_METHODS",
    "Mechanism",
    "MethodFacts",
    "advertised_methods",
]

#: RFC 7523 §2.2: a JWT as client credential.
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: draft-ietf-oauth-spiffe-client-auth: a JWT-SVID as client credential.
JWT_SPIFFE = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"


class Mechanism(Enum):
    """How the request carries its credential; each registered method expects exactly one."""

    BASIC = "HTTP Basic"
    POST = "client_secret in the body"
    ASSERTION = "client_assertion"
    CLIENT_ID_ONLY = "client_id alone"


@dataclass(frozen=True, slots=True)
class MethodFacts:
    name: str
    mechanism: Mechanism
    #: The server keeps a secret for it (hashed, or encrypted for client_secret_jwt).
    keeps_secret: bool = False
    #: The credential is the TLS client certificate (RFC 8705 §2); tokens are bound by default.
    certificate: bool = False
    #: The `client_assertion_type` its requests carry (Mechanism.ASSERTION only).
    assertion_type: str | None = None
    #: The request must name the client with `client_id`: the assertion's `sub` is not the client.
    needs_client_id: bool = False
    #: A client may register it itself (RFC 7591); False: the admin API and the CLI only.
    self_registrable: bool = True
    #: Offered (discovery, authentication) only when the server has a `--federation` file.
    federated: bool = False
    #: It proves who the client is (`none` only names a public client): usable at introspection.
    authenticates: bool = True

    @property
    def signs_own_assertions(self) -> bool:
        """The client signs its own RFC 7523 assertions, so `--assertion-audience` applies."""
        return self.assertion_type == JWT_BEARER and not self.federated


def _registry(*methods: MethodFacts) -> Mapping[str, MethodFacts]:
    return {method.name: method for method in methods}


#: Every method this server implements, in the order lists show them.
METHODS: Mapping[str, MethodFacts] = _registry(
    MethodFacts("client_secret_basic", Mechanism.BASIC, keeps_secret=True),
    MethodFacts("client_secret_post", Mechanism.POST, keeps_secret=True),
    MethodFacts("client_secret_jwt", Mechanism.ASSERTION, keeps_secret=True, assertion_type=JWT_BEARER),
    MethodFacts("private_key_jwt", Mechanism.ASSERTION, assertion_type=JWT_BEARER),
    MethodFacts("tls_client_auth", Mechanism.CLIENT_ID_ONLY, certificate=True),
    MethodFacts("self_signed_tls_client_auth", Mechanism.CLIENT_ID_ONLY, certificate=True),
    MethodFacts("none", Mechanism.CLIENT_ID_ONLY, authenticates=False),
    MethodFacts(
        "federated_jwt",
        Mechanism.ASSERTION,
        assertion_type=JWT_BEARER,
        needs_client_id=True,
        self_registrable=False,
        federated=True,
    ),
    MethodFacts(
        "spiffe_jwt",
        Mechanism.ASSERTION,
        assertion_type=JWT_SPIFFE,
        needs_client_id=True,
        self_registrable=False,
        federated=True,
    ),
)

#: Methods whose credential is a shared secret the server keeps (hashed or encrypted).
SECRET_METHODS = frozenset(name for name, facts in METHODS.items() if facts.keeps_secret)
#: Methods that authenticate with the TLS client certificate (RFC 8705 §2).
MTLS_METHODS = frozenset(name for name, facts in METHODS.items() if facts.certificate)


def advertised_methods(*, federation: bool) -> list[str]:
    """The methods a server offers (SPEC §5, §13): the workload identity ones only with
    `--federation`."""
    return [name for name, facts in METHODS.items() if federation or not facts.federated]
