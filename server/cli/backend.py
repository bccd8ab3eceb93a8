"""Where `certbound clients`, `certbound keys` and `certbound tui` do their work (SPEC §3, §4).

Two back ends behind one interface: the database itself (the same ClientManager and KeyRing as the
server) or a running server's admin API (AdminClient). Both answer with the admin API's JSON views
(RFC 7591 client information, signing-key objects) and raise the same kinds of errors: an OAuthError
subclass locally, AdminAPIError remotely, each with `error` and `description`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from certbound.app import open_vault
from certbound.cli.adminclient import AdminClient, admin_url
from certbound.cli.common import add_setting_flags
from certbound.config import Settings
from certbound.errors import ConfigError
from certbound.keys import KeyRing
from certbound.management import ClientManager, client_information
from certbound.store import open_store

__all__ = ["TARGET_SETTINGS", "Backend", "LocalBackend", "add_target_options", "open_backend", "target_of"]

#: Settings every management command reads: the database and its master key, what metadata is
#: checked against (scopes, secret lifetime), how long retired keys stay published, and the admin
#: token for --url. (`signing_alg` is a flag only where it cannot clash: `clients` has its own
#: `--signing-alg` for the client's metadata.)
TARGET_SETTINGS = frozenset(
    {
        "db",
        "master_key_file",
        "scopes",
        "client_secret_lifetime",
        "admin_token",
        "token_lifetime",
        "clock_skew",
    }
)

_PAGE = 500


class Backend(Protocol):
    """What the management front ends need, over the database or over the admin API."""

    async def add(
        self, metadata: dict[str, Any], *, client_id: str | None, secret: str | None
    ) -> dict[str, Any]: ...

    async def list_clients(self, *, method: str | None) -> list[dict[str, Any]]: ...

    async def show(self, client_id: str) -> dict[str, Any] | None: ...

    async def update(
        self, client_id: str, changes: dict[str, Any], *, secret: str | None
    ) -> dict[str, Any] | None: ...

    async def delete(self, client_id: str) -> bool: ...

    async def rotate(self, client_id: str) -> dict[str, Any] | None: ...

    async def list_keys(self) -> list[dict[str, Any]]: ...

    async def rotate_key(self) -> dict[str, Any]: ...


class LocalBackend:
    """The database, through the layers the server itself uses."""

    def __init__(self, manager: ClientManager, keys: KeyRing) -> None:
        self._manager = manager
        self._keys = keys

    async def add(
        self, metadata: dict[str, Any], *, client_id: str | None, secret: str | None
    ) -> dict[str, Any]:
        created = await self._manager.create(metadata, client_id=client_id, secret=secret)
        return client_information(created.client, secret=created.secret)

    async def list_clients(self, *, method: str | None) -> list[dict[str, Any]]:
        views: list[dict[str, Any]] = []
        after: str | None = None
        while page := await self._manager.list_clients(limit=_PAGE, after=after, auth_method=method):
            views.extend(client_information(client) for client in page)
            after = page[-1].client_id
        return views

    async def show(self, client_id: str) -> dict[str, Any] | None:
        client = await self._manager.get(client_id)
        return client_information(client) if client is not None else None

    async def update(
        self, client_id: str, changes: dict[str, Any], *, secret: str | None
    ) -> dict[str, Any] | None:
        client = await self._manager.get(client_id)
        updated = await self._manager.update(client, changes, secret=secret) if client else None
        return client_information(updated.client, secret=updated.secret) if updated else None

    async def delete(self, client_id: str) -> bool:
        return await self._manager.delete(client_id)

    async def rotate(self, client_id: str) -> dict[str, Any] | None:
        client = await self._manager.get(client_id)
        rotated = await self._manager.rotate_secret(client) if client else None
        return client_information(rotated.client, secret=rotated.secret) if rotated else None

    async def list_keys(self) -> list[dict[str, Any]]:
        return await self._keys.describe()

    async def rotate_key(self) -> dict[str, Any]:
        return self._keys.information(await self._keys.rotate())


def add_target_options(command: argparse.ArgumentParser, extra: frozenset[str] = frozenset()) -> None:
    """`--db URL | --config FILE`, or `--url URL --admin-token T [--cacert PEM]`; `extra` names more
    settings to offer as flags."""
    add_setting_flags(command, set(TARGET_SETTINGS | extra))
    command.add_argument(
        "--url", help="a running server's base URL: use its admin API (default: $CERTBOUND_URL)"
    )
    command.add_argument("--cacert", type=Path, metavar="PEM", help="CA that signed the server's certificate")


def target_of(args: argparse.Namespace) -> str | None:
    """The admin API URL to use, or None for the database: --url, else $CERTBOUND_URL unless
    --db was given (a flag beats the environment)."""
    if args.url is not None and args.db is not None:
        raise ConfigError("use either --url or --db, not both")
    return admin_url(args.url) if args.db is None else None


@asynccontextmanager
async def open_backend(args: argparse.Namespace, settings: Settings) -> AsyncIterator[Backend]:
    url = target_of(args)
    if url is not None:
        if not settings.admin_token:
            raise ConfigError("--url needs --admin-token (or CERTBOUND_ADMIN_TOKEN)")
        async with AdminClient(url, settings.admin_token, args.cacert) as admin:
            yield admin
        return
    vault = open_vault(settings)
    store = await open_store(settings.db)
    try:
        keys = KeyRing(
            store,
            vault,
            alg=settings.signing_alg,
            publish_after_retirement=settings.token_lifetime + settings.clock_skew,
        )
        yield LocalBackend(ClientManager(store, vault, settings), keys)
    finally:
        await store.close()
