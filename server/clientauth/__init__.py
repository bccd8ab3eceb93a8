"""Client authentication at the token, introspection and revocation endpoints.

Read the client_id from the request's shape, load the client, take *its registered* method from the
registry, refuse when the request does not carry that method's credential (the mechanism and
assertion type of its facts, certbound.authmethods), then let the method verify it. Methods are
never tried in turn (SPEC §6: a correct credential for another method is still `invalid_client`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from certbound.authmethods import METHODS, Mechanism
from certbound.clientauth.base import ClientAuthMethod
from certbound.clientauth.credentials import PresentedCredentials, read_credentials
from certbound.clientauth.federated import FederatedJwt
from certbound.clientauth.jwt_methods import ClientSecretJwt, PrivateKeyJwt
from certbound.clientauth.mtls import SelfSignedTlsClientAuth, TlsClientAuth
from certbound.clientauth.none import NoneAuth
from certbound.clientauth.secret import ClientSecretBasic, ClientSecretPost
from certbound.clientauth.spiffe import SpiffeJwt
from certbound.context import ServerContext
from certbound.errors import InvalidClientError
from certbound.models import Client
from certbound.reasons import Reason
from certbound.tls.peer import PeerCertificates

__all__ = ["AUTH_METHODS", "AuthenticatedClient", "ClientAuthMethod", "authenticate_client"]

#: The explicit registry: `token_endpoint_auth_method` value -> implementation (one for each
#: method of certbound.authmethods.METHODS, which holds their facts).
AUTH_METHODS: Mapping[str, ClientAuthMethod] = {
    method.name: method
    for method in (
        ClientSecretBasic(),
        ClientSecretPost(),
        ClientSecretJwt(),
        PrivateKeyJwt(),
        TlsClientAuth(),
        SelfSignedTlsClientAuth(),
        NoneAuth(),
        FederatedJwt(),
        SpiffeJwt(),
    )
}


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    client: Client
    method: str
    certificate: PeerCertificates | None
    #: The thumbprint of the DPoP key the request proved (RFC 9449 §5), set by the token endpoint
    #: once the proof passed: what the grant binds the token to.
    dpop_jkt: str | None = None


async def authenticate_client(
    form: Mapping[str, str],
    authorization: str | None,
    certificate: PeerCertificates | None,
    context: ServerContext,
) -> AuthenticatedClient:
    presented: PresentedCredentials | None = None
    client: Client | None = None
    try:
        presented = read_credentials(form, authorization, certificate)
        client = await context.clients.get(presented.client_id)
        return await _authenticate(presented, client, context)
    except InvalidClientError as exc:
        # RFC 6749 §5.2: a client that tried HTTP Basic is answered with a Basic challenge.
        exc.basic_challenge = authorization is not None and authorization.lstrip()[:6].lower() == "basic "
        exc.client_id = presented.client_id if presented is not None else None
        exc.auth_method = client.auth_method if client is not None else None
        raise


async def _authenticate(
    presented: PresentedCredentials, client: Client | None, context: ServerContext
) -> AuthenticatedClient:
    if client is None:
        raise InvalidClientError("unknown client", reason=Reason.UNKNOWN_CLIENT)
    method = AUTH_METHODS.get(client.auth_method)
    facts = METHODS.get(client.auth_method)
    if method is None or facts is None:
        raise InvalidClientError(
            f"client's method {client.auth_method} is not supported by this server",
            reason=Reason.METHOD_UNSUPPORTED,
        )
    if facts.mechanism is not presented.mechanism or facts.assertion_type != presented.assertion_type:
        raise InvalidClientError(
            f"client is registered for {method.name} but the request used {_how(presented)}",
            reason=Reason.METHOD_MISMATCH,
        )
    if facts.needs_client_id and not presented.client_id_named:
        # The assertion's sub names a workload, not a client: the request must say which client.
        raise InvalidClientError(
            f"client is registered for {method.name} but the request did not send client_id",
            reason=Reason.METHOD_MISMATCH,
        )
    await method.verify(presented, client, context)
    return AuthenticatedClient(client, method.name, presented.certificate)


def _how(presented: PresentedCredentials) -> str:
    if presented.mechanism is Mechanism.CLIENT_ID_ONLY:
        return "no credential"
    if presented.assertion_type is not None:
        return f"{presented.mechanism.value} of type {presented.assertion_type}"
    return str(presented.mechanism.value)
