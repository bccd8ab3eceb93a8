"""Client lifecycle operations shared by every front door (registration, admin API, CLI):
create, replace, delete and rotate secrets, keeping the client cache coherent."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from server.clientmeta import normalize_metadata
from server.clients import ClientCache
from server.config import Settings
from server.errors import InvalidClientMetadataError
from server.models import SECRET_METHODS, Client
from server.store import ClientExistsError, Store
from server.vault import Vault

__all__ = ["ClientManager", "CreatedClient", "generate_secret"]

_MIN_ADMIN_SECRET = 8


def generate_secret() -> str:
    """256 bits of entropy (RFC 6749 §10.10)."""
    return secrets.token_urlsafe(32)


class CreatedClient:
    """A stored client plus what is shown only once: the plain secret."""

    __slots__ = ("client", "secret")

    def __init__(self, client: Client, secret: str | None) -> None:
        self.client = client
        self.secret = secret


class ClientManager:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        settings: Settings,
        cache: ClientCache | None = None,
    ) -> None:
        self._store = store
        self._vault = vault
        self._settings = settings
        self._cache = cache

    def _secret_fields(self, client_id: str, method: str, secret: str) -> dict[str, Any]:
        if method == "client_secret_jwt":
            # RFC 7523 §2.2: the secret is the HMAC key, so it must be recoverable.
            ciphertext = self._vault.encrypt(secret.encode("utf-8"), context=client_id.encode("utf-8"))
            return {"secret_hash": self._vault.hash_secret(secret), "secret_ciphertext": ciphertext}
        return {"secret_hash": self._vault.hash_secret(secret), "secret_ciphertext": None}

    async def create(
        self,
        metadata: Mapping[str, Any],
        *,
        client_id: str | None = None,
        secret: str | None = None,
        secret_lifetime: int = 0,
    ) -> CreatedClient:
        normalized = normalize_metadata(metadata, self._settings)
        method = normalized["token_endpoint_auth_method"]
        if secret is not None:
            if method not in SECRET_METHODS:
                raise InvalidClientMetadataError(f"client_secret is not used by {method}")
            if len(secret) < _MIN_ADMIN_SECRET:
                raise InvalidClientMetadataError(
                    f"client_secret must have at least {_MIN_ADMIN_SECRET} characters"
                )
        elif method in SECRET_METHODS:
            secret = generate_secret()
        client_id = client_id or secrets.token_urlsafe(16)
        now = int(time.time())
        fields: dict[str, Any] = {}
        if secret is not None:
            fields = self._secret_fields(client_id, method, secret)
        client = Client(
            client_id=client_id,
            metadata=normalized,
            client_id_issued_at=now,
            secret_expires_at=now + secret_lifetime if secret is not None and secret_lifetime else 0,
            **fields,
        )
        try:
            await self._store.create_client(client)
        except ClientExistsError:
            raise InvalidClientMetadataError(f"client_id {client_id} is taken") from None
        self._invalidate(client_id)
        return CreatedClient(client, secret)

    async def rotate_secret(self, client: Client, *, secret: str | None = None) -> CreatedClient:
        if client.auth_method not in SECRET_METHODS:
            raise InvalidClientMetadataError(f"client uses {client.auth_method}, which has no secret")
        secret = secret or generate_secret()
        updated = replace(client, **self._secret_fields(client.client_id, client.auth_method, secret))
        await self._store.update_client(updated)
        self._invalidate(client.client_id)
        return CreatedClient(updated, secret)

    async def delete(self, client_id: str) -> bool:
        deleted = await self._store.delete_client(client_id)
        self._invalidate(client_id)
        return deleted

    def _invalidate(self, client_id: str) -> None:
        if self._cache is not None:
            self._cache.invalidate(client_id)
