"""Driving `certbound tui` in Textual's pilot (App.run_test): shared by the local (database) and
the remote (admin API) back-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from certbound.cli.backend import Backend, LocalBackend
from certbound.clientmeta import normalize_metadata
from certbound.config import Settings
from certbound.jose import public_jwk, rfc7638_thumbprint
from certbound.keys import KeyRing, SigningKey
from certbound.management import ClientManager
from certbound.models import Client, SigningKeyRecord
from certbound.store import Store
from certbound.store.sqlite import SQLiteStore
from certbound.tui.app import CertboundApp
from certbound.tui.dialogs import SecretScreen
from certbound.tui.form import ClientFormScreen, FieldRow, SubjectRow
from certbound.vault import Vault
from tests.unit.pki.builders import issue, make_ca, name

#: The clock the app counts key ages from in tests.
NOW = 1_800_000_000
_STEP = 0.02
_TIMEOUT = 10.0


async def store_as_before_the_rules(store: Store, client_id: str, **metadata: Any) -> None:
    """Overwrite metadata members of a stored client with values registration now refuses (control
    characters in a name): a client stored before the rule, which the TUI must still show safely."""
    client = await store.get_client(client_id)
    assert client is not None
    await store.update_client(replace(client, metadata={**client.metadata, **metadata}))


def make_app(backend: Backend | AbstractAsyncContextManager[Backend]) -> CertboundApp:
    """The app on an open back end, or on one it opens itself (an AdminClient)."""
    if not isinstance(backend, AbstractAsyncContextManager):
        backend = nullcontext(backend)
    return CertboundApp(backend, target="test", clock=lambda: NOW)


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    """Let the app work until `condition` holds (back-end calls finish in their own time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _TIMEOUT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(_STEP)


def table_rows(app: CertboundApp, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(table_id, DataTable)
    return [[cell.plain for cell in table.get_row_at(index)] for index in range(table.row_count)]


def listed_ids(app: CertboundApp) -> list[str]:
    return [row[0] for row in table_rows(app, "#clients")]


async def wait_for_list(pilot: Pilot[Any], app: CertboundApp, expected: list[str]) -> None:
    await until(
        pilot, lambda: _on_list(app) and sorted(listed_ids(app)) == sorted(expected), f"list {expected}"
    )


def _on_list(app: CertboundApp) -> bool:
    return type(app.screen).__name__ == "ClientsScreen" and bool(app.screen.query("#clients"))


async def select_row(pilot: Pilot[Any], app: CertboundApp, client_id: str) -> None:
    table = app.screen.query_one("#clients", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(client_id))
    await pilot.pause()


def form(app: CertboundApp) -> ClientFormScreen:
    assert isinstance(app.screen, ClientFormScreen), type(app.screen).__name__
    return app.screen


def row(app: CertboundApp, member: str) -> FieldRow:
    """The visible form row of `member`."""
    rows = [r for r in form(app).query(FieldRow) if r.display and r.field.member == member]
    assert len(rows) == 1, f"{member}: {len(rows)} visible rows"
    return rows[0]


async def open_form(pilot: Pilot[Any], app: CertboundApp, key: str) -> ClientFormScreen:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ClientFormScreen), "the form")
    return form(app)


async def choose_method(pilot: Pilot[Any], app: CertboundApp, method: str) -> None:
    form(app).query_one("#method", Select).value = method
    await pilot.pause()


async def fill(pilot: Pilot[Any], app: CertboundApp, member: str, value: str) -> None:
    widget = row(app, member).query_one(".field-input")
    if isinstance(widget, Select):
        widget.value = value if value else Select.NULL
    else:
        assert isinstance(widget, Input)
        widget.value = value
    await pilot.pause()


async def read_subject_from(pilot: Pilot[Any], app: CertboundApp, member: str, pem_path: str) -> str:
    """Choose the subject field, type the certificate's path and press Enter, as an operator would."""
    subject = row(app, "tls_client_auth_subject")
    assert isinstance(subject, SubjectRow)
    subject.query_one(".subject-kind", Select).value = member
    pem = subject.query_one(".subject-pem", Input)
    pem.focus()
    pem.value = pem_path
    await pilot.press("enter")
    value = subject.query_one(".subject-value", Input)
    await until(pilot, lambda: bool(value.value) or subject.has_class("error"), "the subject read")
    return value.value


def note(app: CertboundApp, member: str) -> str:
    """The error (or hint) line under a field."""
    return str(row(app, member).query_one(".field-note", Static).render())


def general_error(app: CertboundApp) -> str:
    return str(form(app).query_one("#form-error", Static).render())


async def save(pilot: Pilot[Any], app: CertboundApp) -> None:
    """ctrl+s, then wait until the form is gone or shows an error."""
    screen = form(app)
    await pilot.press("ctrl+s")

    def settled() -> bool:
        errors = screen.query(".field-row.error") or screen.query("#form-error.error")
        return app.screen is not screen or bool(errors)

    await until(pilot, settled, "the save")


async def take_secret(pilot: Pilot[Any], app: CertboundApp) -> tuple[str, str]:
    """The client_id and secret the secret screen shows (`c` copies the secret); closes it with Enter."""
    await until(pilot, lambda: isinstance(app.screen, SecretScreen), "the secret screen")
    client_id = str(app.screen.query_one("#client-id", Static).render())
    secret = str(app.screen.query_one("#client-secret", Static).render())
    await pilot.press("c")
    assert app.clipboard == secret
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, SecretScreen), "the secret screen to close")
    return client_id, secret


def client_certificate_pem(*sans: x509.GeneralName) -> bytes:
    ca = make_ca(name((NameOID.COMMON_NAME, "TUI test CA")))
    cert = issue(ca, name((NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.COMMON_NAME, "svc")), sans=sans).cert
    return cert.public_bytes(serialization.Encoding.PEM)


# A fixed demo database: the snapshot tests and scripts/tui_screenshots.py (the README's SVGs).
DEMO_NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
DEMO_TARGET = "sqlite:///data/certbound.db"
_DEMO_SETTINGS = Settings(scopes=("read", "write", "admin"))
_DEMO_VAULT = Vault(bytes(range(32)))
_HOUR = 3600


def _fixed_key(seed: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(seed, ec.SECP256R1())


def _fixed_jwks(seed: int) -> dict[str, Any]:
    jwk = public_jwk(_fixed_key(seed).public_key())
    return {"keys": [{**jwk, "kid": rfc7638_thumbprint(jwk)}]}


DEMO_CLIENTS: list[tuple[str, dict[str, Any]]] = [
    ("billing-eu", {"client_name": "Billing (EU)", "scope": "read write"}),
    ("ledger", {"client_name": "Ledger sync", "token_endpoint_auth_method": "client_secret_jwt"}),
    ("audit", {"client_name": "Audit [bold]log[/bold]", "token_endpoint_auth_method": "client_secret_post"}),
    (
        "reports",
        {"client_name": "Reports", "token_endpoint_auth_method": "private_key_jwt", "jwks": _fixed_jwks(7)},
    ),
    (
        "gateway",
        {
            "client_name": "API gateway",
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=gateway,O=Acme,C=DE",
        },
    ),
    (
        "edge-proxy",
        {"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": _fixed_jwks(11)},
    ),
    (
        "mobile-app",
        {
            "client_name": "Mobile app",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1/cb"],
        },
    ),
]
DEMO_IDS = [client_id for client_id, _ in DEMO_CLIENTS]


async def _seed(path: Path) -> None:
    store = SQLiteStore(str(path))
    await store.open()
    try:
        for index, (client_id, metadata) in enumerate(DEMO_CLIENTS):
            normalized = normalize_metadata(metadata, _DEMO_SETTINGS)
            issued = DEMO_NOW - (index + 1) * 26 * _HOUR
            await store.create_client(Client(client_id, normalized, client_id_issued_at=issued))
        # Each key retires the one before: an expired key, a retired one still published (its
        # successor is two minutes old), and the active one.
        for seed, age in ((1, 40 * 24 * _HOUR), (2, 10 * 24 * _HOUR), (3, 120)):
            key = SigningKey.from_private_key(_fixed_key(seed), "ES256", DEMO_NOW - age)
            record = SigningKeyRecord(key.kid, "ES256", b"not read by the key list", key.created_at)
            await store.add_signing_key(record, retire_others_at=key.created_at)
    finally:
        await store.close()


def seed_demo(path: Path) -> None:
    """Write the demo database at `path` (a new SQLite file)."""
    asyncio.run(_seed(path))


@asynccontextmanager
async def _demo_backend(path: Path) -> AsyncIterator[Backend]:
    store = SQLiteStore(str(path))
    await store.open()
    try:
        grace = 600 + 60  # the default token lifetime plus clock skew
        keys = KeyRing(
            store, _DEMO_VAULT, alg="ES256", publish_after_retirement=grace, clock=lambda: DEMO_NOW
        )
        yield LocalBackend(ClientManager(store, _DEMO_VAULT, _DEMO_SETTINGS), keys)
    finally:
        await store.close()


def demo_app(path: Path) -> CertboundApp:
    """The app on the demo database, its clock fixed: the same screen on every run."""
    return CertboundApp(_demo_backend(path), target=DEMO_TARGET, clock=lambda: DEMO_NOW)
