"""The main screens at 80x24, compared with the committed SVGs (pytest-textual-snapshot; update
with `pytest tests/unit/tui/test_snapshots.py --snapshot-update` after checking the difference).
The demo database and the clock are fixed, so every run draws the same screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from certbound.tui.app import CertboundApp
from certbound.tui.clients import ClientDetailScreen
from tests.tui_kit import (
    DEMO_IDS,
    demo_app,
    fill,
    open_form,
    save,
    seed_demo,
    select_row,
    table_rows,
    until,
    wait_for_list,
)

Compare = Callable[..., bool]


@pytest.fixture
def app(tmp_path: Path) -> CertboundApp:
    path = tmp_path / "demo.db"
    seed_demo(path)
    return demo_app(path)


async def _listed(pilot: Pilot[Any]) -> CertboundApp:
    app = pilot.app
    assert isinstance(app, CertboundApp)
    await wait_for_list(pilot, app, DEMO_IDS)
    return app


def _snapshot(
    snap_compare: Compare, app: CertboundApp, steps: Callable[[Pilot[Any]], Awaitable[None]]
) -> bool:
    async def steady(pilot: Pilot[Any]) -> None:
        await steps(pilot)
        # A blinking cursor would be drawn or not depending on when the picture is taken.
        for text_input in pilot.app.screen.query(Input):
            text_input.cursor_blink = False
        await pilot.pause()

    return snap_compare(app, terminal_size=(80, 24), run_before=steady)


def test_client_list(snap_compare: Compare, app: CertboundApp) -> None:
    assert _snapshot(snap_compare, app, _listed)


def test_client_list_light_theme(snap_compare: Compare, app: CertboundApp) -> None:
    async def light(pilot: Pilot[Any]) -> None:
        (await _listed(pilot)).theme = "textual-light"

    assert _snapshot(snap_compare, app, light)


def test_add_form(snap_compare: Compare, app: CertboundApp) -> None:
    async def add(pilot: Pilot[Any]) -> None:
        await open_form(pilot, await _listed(pilot), "a")

    assert _snapshot(snap_compare, app, add)


def test_add_form_with_a_server_error(snap_compare: Compare, app: CertboundApp) -> None:
    async def refused(pilot: Pilot[Any]) -> None:
        listed = await _listed(pilot)
        await open_form(pilot, listed, "a")
        await fill(pilot, listed, "client_name", "Payments")
        await fill(pilot, listed, "scope", "read everything")
        await save(pilot, listed)

    assert _snapshot(snap_compare, app, refused)


def test_client_detail(snap_compare: Compare, app: CertboundApp) -> None:
    async def detail(pilot: Pilot[Any]) -> None:
        listed = await _listed(pilot)
        await select_row(pilot, listed, "mobile-app")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(listed.screen, ClientDetailScreen), "the detail view")
        await until(pilot, lambda: "redirect_uris" in listed.export_screenshot(), "the details")

    assert _snapshot(snap_compare, app, detail)


def test_keys(snap_compare: Compare, app: CertboundApp) -> None:
    async def keys(pilot: Pilot[Any]) -> None:
        listed = await _listed(pilot)
        await pilot.press("k")
        await until(
            pilot,
            lambda: bool(listed.screen.query("#keys")) and len(table_rows(listed, "#keys")) == 3,
            "keys",
        )

    assert _snapshot(snap_compare, app, keys)
