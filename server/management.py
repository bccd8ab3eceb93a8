"""Client lifecycle shared by every front door (RFC 7591 registration, RFC 7592 management, the
admin API, the CLI): create, replace, update, delete, rotate secrets and registration access tokens,
keeping the client cache coherent.

Secrets and registration access tokens carry 256 bits of entropy (RFC 6749 §10.10) and are shown
once: the store keeps a keyed hash (and, for client_secret_jwt, the AES-GCM encrypted secret). An
administrator's chosen secret may be short, so its hash is the slow one (certbound.vault).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from certbound.authmethods import METHODS, SECRET_METHODS
from certbound.clientadvice import log_client_warnings
from certbound.clientmeta import (
    LEGACY_AUDIENCE_ASSERTIONS,
    LEGACY_AUDIENCE_LAST_SEEN,
    ScopeLimit,
    merge_metadata,
    normalize_metadata,
)
from certbound.clients import ClientCache
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.errors import InvalidClientMetadataError
from certbound.federation import FederationConfig
from certbound.models import Client
from certbound.secretcheck import SecretChecker
from certbound.store import ClientExistsError, Store
from certbound.vault import Vault

__all__ = ["ClientManager", "CreatedClient", "client_information", "generate_secret"]

_MIN_CHOSEN_SECRET = 8
_MAX_CLIENT_ID = 255
_NO_TOKEN_HASH = bytes(32)


def generate_secret() -> str:
    """256 bits of entropy (RFC 6749 §10.10), URL-safe so it survives every transport."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """A stored client plus what is shown only once: the plain secret and registration token."""

    client: Client
    secret: str | None
    registration_token: str | None = None


def client_information(
    client: Client,
    *,
    secret: str | None = None,
    registration_token: str | None = None,
    registration_client_uri: str | None = None,
) -> dict[str, Any]:
    """The RFC 7591 §3.2.1 / RFC 7592 §3 client information: metadata plus what the server issued.

    `client_secret_expires_at` is present for every secret method (REQUIRED once a secret was
    issued); the secret itself only when it was just issued.
    """
    view: dict[str, Any] = {"client_id": client.client_id}
    if secret is not None:
        view["client_secret"] = secret
    view["client_id_issued_at"] = client.client_id_issued_at
    if client.auth_method in SECRET_METHODS:
        view["client_secret_expires_at"] = client.secret_expires_at
    view.update(client.metadata)
    if registration_token is not None:
        view["registration_access_token"] = registration_token
    if registration_client_uri is not None:
        view["registration_client_uri"] = registration_client_uri
    return view


def _signs_own_assertions(client: Client) -> bool:
    facts = METHODS.get(client.auth_method)
    return facts is not None and facts.signs_own_assertions


def _is_unicode_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_client_id(client_id: str) -> None:
    """An administrator's client_id: printable text. RFC 6749 Appendix A.1 says VSCHAR, but
    HTTP Basic form-urlencodes it (§2.3.1), so any Unicode text travels; control characters would
    not survive headers, logs and terminals."""
    if not 0 < len(client_id) <= _MAX_CLIENT_ID:
        raise InvalidClientMetadataError(f"client_id must have 1 to {_MAX_CLIENT_ID} characters")
    if not client_id.isprintable():
        raise InvalidClientMetadataError("client_id must not contain control characters")


class ClientManager:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        settings: Settings,
        cache: ClientCache | None = None,
        checker: SecretChecker | None = None,
        federation: FederationConfig | None = None,
    ) -> None:
        """`federation`: the federation file workload identity clients must refer to, when known
        (certbound.clientmeta)."""
        self._store = store
        self._vault = vault
        self._settings = settings
        self._cache = cache
        self._checker = checker or SecretChecker(vault)
        self._federation = federation

    @classmethod
    def for_context(cls, context: ServerContext) -> ClientManager:
        """The manager a running server's handlers use: its changes invalidate the client cache;
        the federation is the one in use (none without --federation)."""
        return cls(
            context.store,
            context.vault,
            context.settings,
            context.clients,
            context.secret_checker,
            federation=context.federation.current or FederationConfig(),
        )

    async def get(self, client_id: str) -> Client | None:
        """The stored client, read through to the store (management must see the latest write)."""
        return await self._store.get_client(client_id)

    async def list_clients(
        self, *, limit: int = 100, after: str | None = None, auth_method: str | None = None
    ) -> list[Client]:
        return await self._store.list_clients(limit=limit, after=after, auth_method=auth_method)

    async def admin_views(self, clients: Sequence[Client]) -> list[dict[str, Any]]:
        """What the admin API and the CLI show of `clients`: the client information and, for
        clients that sign their own assertions, their legacy-audience count and when it was last
        seen (certbound.legacyaudience: up to its FLUSH_SECONDS behind)."""
        signing = [client.client_id for client in clients if _signs_own_assertions(client)]
        uses = await self._store.legacy_audience_uses(signing) if signing else {}
        views = []
        for client in clients:
            view = client_information(client)
            if _signs_own_assertions(client):
                count, last_seen = uses.get(client.client_id, (0, None))
                view[LEGACY_AUDIENCE_ASSERTIONS] = count
                view[LEGACY_AUDIENCE_LAST_SEEN] = last_seen
            views.append(view)
        return views

    async def create(
        self,
        metadata: Mapping[str, Any],
        *,
        client_id: str | None = None,
        secret: str | None = None,
        dynamic: bool = False,
    ) -> CreatedClient:
        """Register a client. `client_id` and `secret` are an administrator's choice (checked);
        otherwise both are generated. `dynamic`: the client registers itself (RFC 7591): its scope
        is bounded by --registration-scopes and it gets an RFC 7592 registration access token."""
        scopes = ScopeLimit.dynamic(self._settings) if dynamic else None
        normalized = self._normalize(metadata, scopes, dynamic=dynamic)
        method = normalized["token_endpoint_auth_method"]
        if client_id is None:
            # Hex, not base64url: an identifier starting with "-" reads as a flag on command lines.
            client_id = secrets.token_hex(16)
        else:
            _check_client_id(client_id)
        chosen_secret = secret
        chosen = secret is not None
        if secret is not None:
            self._check_chosen_secret(secret, method)
        elif method in SECRET_METHODS:
            secret = generate_secret()
        token = secrets.token_urlsafe(32) if dynamic else None
        client = Client(
            client_id=client_id,
            metadata=normalized,
            client_id_issued_at=int(time.time()),
            registration_token_hash=self._vault.hash_secret(token) if token is not None else None,
            **await self._secret_fields(client_id, method, secret, chosen=chosen),
        )
        try:
            await self._store.create_client(client)
        except ClientExistsError:
            raise InvalidClientMetadataError(f"client_id {client_id} is taken") from None
        self._invalidate(client_id)
        log_client_warnings(client_id, normalized, chosen_secret)
        return CreatedClient(client, secret, token)

    async def replace(
        self,
        client: Client,
        metadata: Mapping[str, Any],
        *,
        secret: str | None = None,
        rotate_secret: bool = False,
        dynamic: bool = False,
    ) -> CreatedClient | None:
        """Full replacement of the metadata (RFC 7592 §2.2), validated as at registration.

        The secret is kept while the method still uses one (and the stored form suits it: a
        client_secret_jwt secret must be recoverable), unless `rotate_secret` or an administrator's
        `secret` replaces it; moving to a secret method issues one, leaving them drops it.
        `dynamic`: the client updates itself (RFC 7592): it cannot widen its scope beyond
        --registration-scopes, and gets a new registration access token.
        None when the client was deleted meanwhile.
        """
        scopes = ScopeLimit.dynamic(self._settings, holding=client.scopes) if dynamic else None
        normalized = self._normalize(metadata, scopes, dynamic=dynamic)
        method = normalized["token_endpoint_auth_method"]
        new_secret: str | None = None
        fields: dict[str, Any]
        if secret is not None:
            self._check_chosen_secret(secret, method)
            new_secret = secret
        elif method in SECRET_METHODS and (rotate_secret or not self._can_keep_secret(client, method)):
            new_secret = generate_secret()
        if new_secret is not None:
            fields = await self._secret_fields(
                client.client_id, method, new_secret, chosen=secret is not None
            )
        elif method in SECRET_METHODS:
            fields = {
                "secret_hash": client.secret_hash,
                "secret_ciphertext": client.secret_ciphertext if method == "client_secret_jwt" else None,
                "secret_expires_at": client.secret_expires_at,
            }
        else:
            fields = await self._secret_fields(client.client_id, method, None, chosen=False)
        token: str | None = None
        if dynamic:
            # RFC 7592 §2.2: the server MAY issue a new registration access token on update.
            token = secrets.token_urlsafe(32)
            fields["registration_token_hash"] = self._vault.hash_secret(token)
        updated = replace(client, metadata=normalized, **fields)
        if not await self._store.update_client(updated):
            self._invalidate(client.client_id)
            return None
        self._invalidate(client.client_id)
        log_client_warnings(client.client_id, normalized, secret)
        return CreatedClient(updated, new_secret, token)

    async def update(
        self, client: Client, changes: Mapping[str, Any], *, secret: str | None = None
    ) -> CreatedClient | None:
        """Merge `changes` into the stored metadata (RFC 7396: null deletes), then replace."""
        return await self.replace(client, merge_metadata(client.metadata, changes), secret=secret)

    async def rotate_secret(self, client: Client, *, secret: str | None = None) -> CreatedClient | None:
        """A new secret (generated, or an administrator's); the old one stops working at once."""
        if client.auth_method not in SECRET_METHODS:
            raise InvalidClientMetadataError(
                f"token_endpoint_auth_method {client.auth_method} has no secret to rotate"
            )
        chosen = secret is not None
        if secret is not None:
            self._check_chosen_secret(secret, client.auth_method)
            log_client_warnings(client.client_id, client.metadata, secret)
        secret = secret or generate_secret()
        fields = await self._secret_fields(client.client_id, client.auth_method, secret, chosen=chosen)
        updated = replace(client, **fields)
        stored = await self._store.update_client(updated)
        self._invalidate(client.client_id)
        return CreatedClient(updated, secret) if stored else None

    async def delete(self, client_id: str) -> bool:
        """Delete the client and its reference tokens (RFC 7592 §2.3)."""
        deleted = await self._store.delete_client(client_id)
        self._invalidate(client_id)
        return deleted

    def verify_registration_token(self, client: Client | None, token: str) -> bool:
        """RFC 7592 §1.2: the presented registration access token, compared in constant time.
        Without a client (or a token) the comparison still runs, so the answer takes the same time
        and does not tell whether the client exists."""
        expected = client.registration_token_hash if client is not None else None
        matches = self._vault.verify_secret(token, expected or _NO_TOKEN_HASH)
        return matches and expected is not None

    async def verify_client_secret(self, client: Client, secret: str) -> bool:
        """Whether `secret` is the client's current secret (constant-time comparison)."""
        if client.secret_hash is None:
            return False
        return await self._checker.verify(secret, client.secret_hash)

    # helpers
    def _normalize(
        self, metadata: Mapping[str, Any], scopes: ScopeLimit | None, *, dynamic: bool
    ) -> dict[str, Any]:
        return normalize_metadata(
            metadata, self._settings, scopes, dynamic=dynamic, federation=self._federation
        )

    async def _secret_fields(
        self, client_id: str, method: str, secret: str | None, *, chosen: bool
    ) -> dict[str, Any]:
        """The stored form of `secret`: a generated one's fast HMAC, a `chosen` one's slow hash."""
        if secret is None or method not in SECRET_METHODS:
            return {"secret_hash": None, "secret_ciphertext": None, "secret_expires_at": 0}
        lifetime = self._settings.client_secret_lifetime
        fields: dict[str, Any] = {
            "secret_hash": await self._checker.hash_chosen(secret)
            if chosen
            else self._vault.hash_secret(secret),
            "secret_ciphertext": None,
            "secret_expires_at": int(time.time()) + lifetime if lifetime else 0,
        }
        if method == "client_secret_jwt":
            # RFC 7523 §2.2: the secret is the HMAC key, so it must be recoverable.
            fields["secret_ciphertext"] = self._vault.encrypt(
                secret.encode("utf-8"), context=client_id.encode("utf-8")
            )
        return fields

    @staticmethod
    def _can_keep_secret(client: Client, method: str) -> bool:
        if client.secret_hash is None or client.auth_method not in SECRET_METHODS:
            return False
        return method != "client_secret_jwt" or client.secret_ciphertext is not None

    @staticmethod
    def _check_chosen_secret(secret: str, method: str) -> None:
        if method not in SECRET_METHODS:
            raise InvalidClientMetadataError(f"client_secret is not used by {method}")
        if not _is_unicode_text(secret):
            raise InvalidClientMetadataError("client_secret must be Unicode text (it holds a lone surrogate)")
        if len(secret) < _MIN_CHOSEN_SECRET:
            raise InvalidClientMetadataError(
                f"client_secret must have at least {_MIN_CHOSEN_SECRET} characters"
            )

    def _invalidate(self, client_id: str) -> None:
        if self._cache is not None:
            self._cache.invalidate(client_id)
