from __future__ import annotations

import pytest

from certbound.errors import InvalidRequestError, InvalidScopeError
from certbound.grants.base import certificate_thumbprint_for, granted_scope, token_audience
from certbound.models import Client


def client(**metadata: object) -> Client:
    return Client("c", {"scope": "read write", **metadata}, 0)


def test_granted_scope() -> None:
    assert granted_scope(None, client()) == "read write"
    assert granted_scope("write read write", client()) == "write read"
    with pytest.raises(InvalidScopeError, match="admin"):
        granted_scope("read admin", client())
    with pytest.raises(InvalidScopeError):
        granted_scope("  ", client())


def test_token_audience() -> None:
    assert token_audience(None, "https://as") == "https://as"
    assert token_audience("urn:example:api", "https://as") == "urn:example:api"
    for bad in ("relative/path", "https://x/#frag", "1http://x", ""):
        with pytest.raises(InvalidRequestError):
            token_audience(bad, "https://as")


def test_binding_only_for_bound_clients() -> None:
    assert certificate_thumbprint_for(client(), None) is None
    with pytest.raises(InvalidRequestError, match="certificate-bound"):
        certificate_thumbprint_for(client(tls_client_certificate_bound_access_tokens=True), None)
