"""Client authentication at the token, introspection and revocation endpoints.

Read the client_id from the request's shape, load the client, take *its registered* method from the
registry, refuse when the request does not carry that method's credential, then let the method
verify it. Methods are never tried in turn (SPEC §6: a correct credential for another method is
still `invalid_client`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from certbound.clientauth.base import ClientAuthMethod
from certbound.clientauth.credentials import Mechanism, PresentedCredentials, read_credentials
from certbound.clientauth.jwt_methods import ClientSecretJwt, PrivateKeyJwt
from certbound.clientauth.mtls import SelfSignedTlsClientAuth, TlsClientAuth
from certbound.clientauth.none import NoneAuth
from certbound.clientauth.secret import ClientSecretBasic, ClientSecretPost
from certbound.context import ServerContext
from certbound.errors import InvalidClientError
from certbound.models import Client
from certbound.reasons import Reason
from certbound.tls.peer import PeerCertificates

__all__ = ["AUTH_METHODS", "AuthenticatedClient", "ClientAuthMethod", "authenticate_client"]

#: The explicit registry: `token_endpoint_auth_method` value -> implementation.
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
    if method is None:
        raise InvalidClientError(
            f"client's method {client.auth_method} is not supported by this server",
            reason=Reason.METHOD_UNSUPPORTED,
        )
    if method.mechanism is not presented.mechanism:
        how = (
            "no credential" if presented.mechanism is Mechanism.CLIENT_ID_ONLY else presented.mechanism.value
        )
        raise InvalidClientError(
            f"client is registered for {method.name} but the request used {how}",
            reason=Reason.METHOD_MISMATCH,
        )
    await method.verify(presented, client, context)
    return AuthenticatedClient(client, method.name, presented.certificate)
