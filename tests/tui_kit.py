"""Driving `certbound tui` in Textual's pilot (App.run_test): shared by the local (database) and
the remote (admin API) back-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from certbound.cli.backend import Backend
from certbound.tui.app import CertboundApp
from certbound.tui.dialogs import SecretScreen
from certbound.tui.form import ClientFormScreen, FieldRow, SubjectRow
from tests.unit.pki.builders import issue, make_ca, name

#: The clock the app counts key ages from in tests.
NOW = 1_800_000_000
_STEP = 0.02
_TIMEOUT = 10.0


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
    """The client_id and secret the secret screen shows; closes it with Enter."""
    await until(pilot, lambda: isinstance(app.screen, SecretScreen), "the secret screen")
    client_id = str(app.screen.query_one("#client-id", Static).render())
    secret = str(app.screen.query_one("#client-secret", Static).render())
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, SecretScreen), "the secret screen to close")
    return client_id, secret


def client_certificate_pem(*sans: x509.GeneralName) -> bytes:
    ca = make_ca(name((NameOID.COMMON_NAME, "TUI test CA")))
    cert = issue(ca, name((NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.COMMON_NAME, "svc")), sans=sans).cert
    return cert.public_bytes(serialization.Encoding.PEM)
