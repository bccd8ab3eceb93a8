"""The client list (the first screen) and a client's details."""

from __future__ import annotations

from typing import Any, cast

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from certbound.cli.terminal import safe_for_terminal
from certbound.tui.app import OPERATION_ERRORS, CertboundApp
from certbound.tui.dialogs import SecretScreen
from certbound.tui.fields import offered_methods
from certbound.tui.form import ClientFormScreen
from certbound.tui.keys import KeysScreen
from certbound.tui.text import shown, utc

__all__ = ["ClientDetailScreen", "ClientsScreen", "matches_search"]


def matches_search(view: dict[str, Any], search: str) -> bool:
    """Case-insensitive substring of the client_id or the client_name."""
    needle = search.strip().casefold()
    if not needle:
        return True
    name = view.get("client_name")
    haystacks = [str(view["client_id"]), name if isinstance(name, str) else ""]
    return any(needle in haystack.casefold() for haystack in haystacks)


class _ClientScreen(Screen[None]):
    """What the list and the detail screen share: the app, its back end, and the operations."""

    @property
    def certbound(self) -> CertboundApp:
        return cast(CertboundApp, self.app)

    def selected_client(self) -> str | None:
        raise NotImplementedError

    async def reload(self) -> None:
        raise NotImplementedError

    def _edit_done(self, view: dict[str, Any] | None) -> None:
        if view is not None and "client_secret" in view:
            self.app.push_screen(SecretScreen(view))

    async def action_add(self) -> None:
        async def saved(view: dict[str, Any] | None) -> None:
            self._edit_done(view)
            await self.reload()

        await self.app.push_screen(ClientFormScreen(None), saved)

    async def action_edit(self) -> None:
        client_id = self.selected_client()
        if client_id is None:
            return
        try:
            view = await self.certbound.backend.show(client_id)
        except OPERATION_ERRORS as exc:
            self.certbound.report(exc)
            return
        if view is None:
            self.certbound.report_missing(client_id)
            await self.reload()
            return

        async def saved(updated: dict[str, Any] | None) -> None:
            self._edit_done(updated)
            await self.reload()

        await self.app.push_screen(ClientFormScreen(view), saved)

    def action_delete(self) -> None:
        client_id = self.selected_client()
        if client_id is not None:
            self.certbound.delete_client(client_id, self.after_delete)

    async def after_delete(self) -> None:
        await self.reload()

    def action_rotate(self) -> None:
        client_id = self.selected_client()
        if client_id is not None:
            self.certbound.rotate_secret(client_id, self.reload)


class ClientsScreen(_ClientScreen):
    """Every client, filtered by method (by the back end) and by a search of id and name."""

    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("r", "rotate", "Rotate secret"),
        Binding("k", "keys", "Keys"),
        Binding("slash", "search", "Search"),
        Binding("q", "app.quit", "Quit"),
        Binding("m", "method", "Method", show=False),
        Binding("f5,ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "focus_list", "List", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._views: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Input(placeholder="/ search id or name", id="search", compact=True)
            yield Select(
                [(method, method) for method in offered_methods()],
                prompt="all methods (m)",
                id="method-filter",
                compact=True,
            )
        table: DataTable[Text] = DataTable(id="clients", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="status", markup=False)
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#clients", DataTable)
        table.add_column("CLIENT ID", key="client_id")
        table.add_column("METHOD", key="method")
        table.add_column("NAME", key="name")
        await self.reload()
        table.focus()

    def _method(self) -> str | None:
        value = self.query_one("#method-filter", Select).value
        return value if isinstance(value, str) else None

    async def reload(self) -> None:
        """Read the clients again (with the method filter), then show those the search keeps."""
        try:
            self._views = await self.certbound.backend.list_clients(method=self._method())
        except OPERATION_ERRORS as exc:
            self._views = []
            self.certbound.report(exc)
        self._show()

    def _show(self) -> None:
        table = self.query_one("#clients", DataTable)
        selected = self.selected_client()
        search = self.query_one("#search", Input).value
        table.clear()
        for view in self._views:
            if matches_search(view, search):
                client_id = str(view["client_id"])
                table.add_row(
                    shown(client_id),
                    shown(view.get("token_endpoint_auth_method", "")),
                    shown(view.get("client_name", "")),
                    key=client_id,
                )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        shown_count, total = table.row_count, len(self._views)
        status = f"{total} clients" if shown_count == total else f"{shown_count} of {total} clients"
        self.query_one("#status", Static).update(Text(status))

    def selected_client(self) -> str | None:
        table = self.query_one("#clients", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    @on(Input.Changed, "#search")
    def _search_changed(self) -> None:
        self._show()

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one("#clients", DataTable).focus()

    @on(Select.Changed, "#method-filter")
    async def _method_changed(self) -> None:
        await self.reload()

    @on(DataTable.RowSelected, "#clients")
    async def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            await self.app.push_screen(ClientDetailScreen(event.row_key.value), self._detail_closed)

    async def _detail_closed(self, _: None) -> None:
        await self.reload()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_method(self) -> None:
        self.query_one("#method-filter", Select).focus()

    def action_focus_list(self) -> None:
        self.query_one("#clients", DataTable).focus()

    async def action_reload(self) -> None:
        await self.reload()

    def action_keys(self) -> None:
        self.app.push_screen(KeysScreen())


class ClientDetailScreen(_ClientScreen):
    """One client's metadata, every member as text."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("r", "rotate", "Rotate secret"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, client_id: str) -> None:
        super().__init__()
        self._client_id = client_id

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail-scroll"):
            yield Static(id="detail", markup=False)
        yield Footer()

    async def on_mount(self) -> None:
        await self.reload()

    def selected_client(self) -> str | None:
        return self._client_id

    async def reload(self) -> None:
        try:
            view = await self.certbound.backend.show(self._client_id)
        except OPERATION_ERRORS as exc:
            self.certbound.report(exc)
            return
        if view is None:
            self.certbound.report_missing(self._client_id)
            self.dismiss(None)
            return
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for name, value in view.items():
            text = shown(value)
            if name.endswith("_at") and isinstance(value, int) and value > 0:
                text.append(f"  ({utc(value)})", style="dim")
            grid.add_row(Text(safe_for_terminal(name)), text)
        self.query_one("#detail", Static).update(grid)
        self.sub_title = safe_for_terminal(self._client_id)

    async def after_delete(self) -> None:
        self.dismiss(None)

    def action_back(self) -> None:
        self.dismiss(None)
