import pytest

from certbound.errors import InvalidTokenError
from certbound.resource import TokenVerifier

pytest_plugins = ["certbound.pytest_plugin"]  # or run: pytest -p certbound.pytest_plugin


async def test_my_api_gets_a_certificate_bound_token(certbound_server, certbound_client_factory):
    client = await certbound_client_factory("tls_client_auth")  # any of the seven methods
    token = await client.fetch_token(scope="read")  # over mTLS with a fresh client certificate

    ca = certbound_server.server_ca_file
    async with TokenVerifier(issuer=certbound_server.issuer, ca_file=ca) as verifier:
        verified = await verifier.verify(token, client.certificate)
        assert (verified.client_id, verified.scope) == (client.client_id, "read")
        with pytest.raises(InvalidTokenError):  # bound: worthless without its certificate
            await verifier.verify(token, None)
