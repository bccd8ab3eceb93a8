"""The signing keys: kid, alg, state (active / retired but published / expired) and age; rotate."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from certbound.tui.app import OPERATION_ERRORS, CertboundApp
from certbound.tui.text import age, shown

__all__ = ["KeysScreen"]

_STATE_STYLES = {"active": "bold", "retired": "", "expired": "dim"}


class KeysScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Clients"),
        Binding("r", "rotate", "Rotate key"),
        Binding("q", "app.quit", "Quit"),
        Binding("f5,ctrl+r", "reload", "Reload", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[Text] = DataTable(id="keys", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(
            Text("Retired keys stay in /jwks until the tokens they signed have expired."),
            id="keys-note",
            markup=False,
        )
        yield Footer()

    async def on_mount(self) -> None:
        self.sub_title = "signing keys"
        table = self.query_one("#keys", DataTable)
        table.add_column("KID", key="kid")
        table.add_column("ALG", key="alg")
        table.add_column("STATE", key="state")
        table.add_column("AGE", key="age")
        await self.reload()
        table.focus()

    async def reload(self) -> None:
        app = cast(CertboundApp, self.app)
        try:
            keys: list[dict[str, Any]] = await app.backend.list_keys()
        except OPERATION_ERRORS as exc:
            app.report(exc)
            return
        table = self.query_one("#keys", DataTable)
        table.clear()
        now = app.clock()
        for key in keys:
            state = str(key["state"])
            table.add_row(
                shown(key["kid"]),
                shown(key["alg"]),
                shown(state, _STATE_STYLES.get(state, "")),
                Text(age(int(key["created_at"]), now)),
                key=str(key["kid"]),
            )

    async def action_reload(self) -> None:
        await self.reload()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_rotate(self) -> None:
        app = cast(CertboundApp, self.app)

        async def rotate() -> None:
            key = await app.backend.rotate_key()
            app.notify(f"new active key {shown(key['kid']).plain}", markup=False)
            await self.reload()

        question = Text(
            "Add a new active signing key? Every node publishes it within 30 s; the current key is "
            "retired and stays published until its tokens expire."
        )
        app.confirm_then(question, rotate)
