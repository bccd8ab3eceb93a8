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


async def authenticate_client(
    form: Mapping[str, str],
    authorization: str | None,
    certificate: PeerCertificates | None,
    context: ServerContext,
) -> AuthenticatedClient:
    try:
        return await _authenticate(read_credentials(form, authorization, certificate), context)
    except InvalidClientError as exc:
        # RFC 6749 §5.2: a client that tried HTTP Basic is answered with a Basic challenge.
        exc.basic_challenge = authorization is not None and authorization.lstrip()[:6].lower() == "basic "
        raise


async def _authenticate(presented: PresentedCredentials, context: ServerContext) -> AuthenticatedClient:
    client = await context.clients.get(presented.client_id)
    if client is None:
        raise InvalidClientError("unknown client")
    method = AUTH_METHODS.get(client.auth_method)
    if method is None:
        raise InvalidClientError(f"client's method {client.auth_method} is not supported by this server")
    if method.mechanism is not presented.mechanism:
        how = (
            "no credential" if presented.mechanism is Mechanism.CLIENT_ID_ONLY else presented.mechanism.value
        )
        raise InvalidClientError(f"client is registered for {method.name} but the request used {how}")
    await method.verify(presented, client, context)
    return AuthenticatedClient(client, method.name, presented.certificate)
