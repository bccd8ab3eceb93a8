"""`certbound clients add|list|show|delete|rotate-secret`, on the database directly.

Exit codes: 0 ok, 1 not found, 2 bad input (one `certbound: error:` line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from server.app import open_vault
from server.cli.common import add_database_options, settings_from_args
from server.errors import ConfigError, InvalidClientMetadataError
from server.management import ClientManager, CreatedClient
from server.models import Client
from server.store import Store, open_store

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("clients", help="manage clients")
    sub = parser.add_subparsers(dest="clients_command", required=True, parser_class=type(parser))

    add = sub.add_parser("add", help="register a client; prints its client_id and, once, its secret")
    add.add_argument("--method", default="client_secret_basic", help="token_endpoint_auth_method")
    add.add_argument("--client-id", help="client_id (default: generated)")
    add.add_argument("--secret", help="client secret (default: generated, 256 bits)")
    add.add_argument("--scope", dest="client_scope", help="space-separated scopes (default: all)")
    add.add_argument("--grant-type", action="append", dest="grant_types", help="grant type (repeatable)")
    add.add_argument("--opaque", action="store_true", help="issue reference tokens instead of JWTs")
    add.add_argument("--data", help="JSON file with RFC 7591 metadata")
    add.add_argument("--json", action="store_true", help="print JSON")
    add_database_options(add)
    add.set_defaults(run=_run, action=_add)

    listing = sub.add_parser("list", help="list clients")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_database_options(listing)
    listing.set_defaults(run=_run, action=_list)

    for name, action, help_text in (
        ("show", _show, "show one client"),
        ("delete", _delete, "delete a client and its reference tokens"),
        ("rotate-secret", _rotate, "replace a client's secret; prints the new one"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("client_id")
        command.add_argument("--json", action="store_true", help="print JSON")
        add_database_options(command)
        command.set_defaults(run=_run, action=action)


def _run(args: argparse.Namespace) -> int:
    from server.cli import run_async

    return run_async(_with_manager(args))


@asynccontextmanager
async def _opened(args: argparse.Namespace) -> AsyncIterator[tuple[Store, ClientManager]]:
    settings = settings_from_args(args)
    vault = open_vault(settings)
    store = await open_store(settings.db)
    try:
        yield store, ClientManager(store, vault, settings)
    finally:
        await store.close()


async def _with_manager(args: argparse.Namespace) -> int:
    async with _opened(args) as (store, manager):
        try:
            status: int = await args.action(args, store, manager)
        except InvalidClientMetadataError as exc:
            raise ConfigError(f"{exc.error}: {exc.description}") from None
        return status


def _view(client: Client, secret: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {"client_id": client.client_id, **client.metadata}
    view["client_id_issued_at"] = client.client_id_issued_at
    if secret is not None:
        view["client_secret"] = secret
        view["client_secret_expires_at"] = client.secret_expires_at
    return view


def _print_created(created: CreatedClient, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_view(created.client, created.secret), indent=2))
        return
    print(f"client_id: {created.client.client_id}")
    if created.secret is not None:
        print(f"client_secret: {created.secret}")


def _metadata_from_args(args: argparse.Namespace) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if args.data:
        try:
            with open(args.data, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {args.data}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.data} must hold a JSON object")
        metadata.update(loaded)
    metadata.setdefault("token_endpoint_auth_method", args.method)
    if args.client_scope is not None:
        metadata["scope"] = args.client_scope
    if args.grant_types:
        metadata["grant_types"] = args.grant_types
    if args.opaque:
        metadata["access_token_as_jwt"] = False
    return metadata


async def _add(args: argparse.Namespace, store: Store, manager: ClientManager) -> int:
    created = await manager.create(_metadata_from_args(args), client_id=args.client_id, secret=args.secret)
    _print_created(created, args.json)
    return 0


async def _list(args: argparse.Namespace, store: Store, manager: ClientManager) -> int:
    clients: list[Client] = []
    after: str | None = None
    while page := await store.list_clients(limit=500, after=after):
        clients.extend(page)
        after = page[-1].client_id
    if args.json:
        print(json.dumps([_view(client) for client in clients], indent=2))
    else:
        for client in clients:
            print(f"{client.client_id}\t{client.auth_method}\t{' '.join(client.scopes)}")
    return 0


async def _find(args: argparse.Namespace, store: Store) -> Client | None:
    client = await store.get_client(args.client_id)
    if client is None:
        sys.stderr.write(f"certbound: error: no client {args.client_id}\n")
    return client


async def _show(args: argparse.Namespace, store: Store, manager: ClientManager) -> int:
    client = await _find(args, store)
    if client is None:
        return 1
    print(json.dumps(_view(client), indent=2))
    return 0


async def _delete(args: argparse.Namespace, store: Store, manager: ClientManager) -> int:
    if not await manager.delete(args.client_id):
        sys.stderr.write(f"certbound: error: no client {args.client_id}\n")
        return 1
    print(f"deleted {args.client_id}")
    return 0


async def _rotate(args: argparse.Namespace, store: Store, manager: ClientManager) -> int:
    client = await _find(args, store)
    if client is None:
        return 1
    _print_created(await manager.rotate_secret(client), args.json)
    return 0
