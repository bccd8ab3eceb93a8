"""Where `certbound clients`, `certbound keys` and `certbound tui` do their work (SPEC §3, §4).

Two back ends behind one interface: the database itself (the same ClientManager and KeyRing as the
server) or a running server's admin API (AdminClient). Both answer with the admin API's JSON views
(RFC 7591 client information, signing-key objects) and raise the same kinds of errors: an OAuthError
subclass locally, AdminAPIError remotely, each with `error` and `description`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from certbound.app import open_database, open_vault
from certbound.cli.adminclient import AdminClient
from certbound.cli.common import add_setting_flags
from certbound.clientadvice import log_client_warnings
from certbound.config import CACERT_ENV, URL_ENV, AdminTarget, Settings, load_admin_target
from certbound.errors import ConfigError
from certbound.federation import load_federation
from certbound.keys import KeyRing
from certbound.management import ClientManager, client_information

__all__ = [
    "TARGET_SETTINGS",
    "AdminBackend",
    "Backend",
    "LocalBackend",
    "add_target_options",
    "admin_target",
    "open_backend",
]

#: Settings every management command reads: the database and its master key, what metadata is
#: checked against (scopes, secret lifetime, the federation file workload identity clients refer
#: to), how long retired keys stay published, and the admin token (or the file holding it) for
#: --url. (`signing_alg` is a flag only where it cannot clash: `clients` has its own
#: `--signing-alg` for the client's metadata.)
TARGET_SETTINGS = frozenset(
    {
        "db",
        "master_key_file",
        "scopes",
        "client_secret_lifetime",
        "admin_token",
        "admin_token_file",
        "token_lifetime",
        "clock_skew",
        "federation",
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
            views.extend(await self._manager.admin_views(page))
            after = page[-1].client_id
        return views

    async def show(self, client_id: str) -> dict[str, Any] | None:
        client = await self._manager.get(client_id)
        return (await self._manager.admin_views([client]))[0] if client is not None else None

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


class AdminBackend(AdminClient):
    """The admin API. The server logs its advice on what it registered (certbound.clientadvice) in
    its own log; this logs it for the operator too, as the database back end's ClientManager does
    (`certbound clients` prints it as `certbound: warning:` lines)."""

    async def add(
        self, metadata: Mapping[str, Any], *, client_id: str | None, secret: str | None
    ) -> dict[str, Any]:
        view = await super().add(metadata, client_id=client_id, secret=secret)
        log_client_warnings(view["client_id"], view, secret)
        return view

    async def update(
        self, client_id: str, changes: Mapping[str, Any], *, secret: str | None
    ) -> dict[str, Any] | None:
        view = await super().update(client_id, changes, secret=secret)
        if view is not None:
            log_client_warnings(client_id, view, secret)
        return view


def add_target_options(command: argparse.ArgumentParser, extra: frozenset[str] = frozenset()) -> None:
    """`--db URL | --config FILE`, or `--url URL --admin-token T [--cacert PEM]`; `extra` names more
    settings to offer as flags."""
    add_setting_flags(command, set(TARGET_SETTINGS | extra))
    command.add_argument(
        "--url", help=f"a running server's base URL: use its admin API (env {URL_ENV}; --db beats it)"
    )
    command.add_argument(
        "--cacert",
        type=Path,
        metavar="PEM",
        help=f"CA that signed the server's certificate (env {CACERT_ENV})",
    )


def admin_target(args: argparse.Namespace, settings: Settings) -> AdminTarget | None:
    """The admin API to use (certbound.config.load_admin_target: --url or CERTBOUND_URL, the admin
    token, --cacert or CERTBOUND_CACERT), or None for the database: a --db flag beats the
    environment."""
    if args.url is not None and args.db is not None:
        raise ConfigError("use either --url or --db, not both")
    return load_admin_target(settings, url=args.url, cacert=args.cacert) if args.db is None else None


@asynccontextmanager
async def open_backend(args: argparse.Namespace, settings: Settings) -> AsyncIterator[Backend]:
    target = admin_target(args, settings)
    if target is not None:
        async with AdminBackend.to(target) as admin:
            yield admin
        return
    # Only the names of issuers and trust domains matter here: the fetch rules are the server's.
    federation = (
        load_federation(settings.federation, audience=settings.issuer, allow_private=True)
        if settings.federation is not None
        else None
    )
    vault = open_vault(settings)
    store = await open_database(settings)
    try:
        keys = KeyRing(
            store,
            vault,
            alg=settings.signing_alg,
            publish_after_retirement=settings.token_lifetime + settings.clock_skew,
        )
        yield LocalBackend(ClientManager(store, vault, settings, federation=federation), keys)
    finally:
        await store.close()
