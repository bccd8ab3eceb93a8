"""`certbound tui`: the Textual application (issue 12; SPEC §3).

It works through one management back end (certbound.cli.backend): the database or a running
server's admin API, the same code paths as `certbound clients` and `certbound keys`. Screens:
the client list (the first screen), a client's details, the add/edit form, the signing keys.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from rich.text import Text
from textual.app import App
from textual.binding import Binding

from certbound.cli.adminclient import AdminAPIError
from certbound.cli.backend import Backend
from certbound.cli.terminal import safe_for_terminal
from certbound.errors import ConfigError, OAuthError, StoreError
from certbound.tui.dialogs import ConfirmScreen, SecretScreen
from certbound.tui.text import shown

__all__ = ["OPERATION_ERRORS", "CertboundApp", "describe_error"]

#: What a back-end call may raise that the operator should read (anything else is a bug).
OPERATION_ERRORS = (OAuthError, AdminAPIError, ConfigError, StoreError)


def describe_error(exc: Exception) -> str:
    """One line, escaped: `error: description` for protocol errors, the message otherwise."""
    if isinstance(exc, OAuthError | AdminAPIError):
        return safe_for_terminal(f"{exc.error}: {exc.description}" if exc.description else exc.error)
    return safe_for_terminal(str(exc))


class CertboundApp(App[None]):
    TITLE = "certbound"
    # Theme variables only ($error, $primary...), so both the dark and the light theme read well.
    CSS = """
    #filters { height: 1; margin: 0 1; }
    #search { width: 1fr; margin-right: 2; }
    #method-filter { width: 34; }
    #clients, #keys { height: 1fr; }
    #status, #keys-note { height: 1; margin: 0 1; color: $text-muted; }
    #detail-scroll, #form { padding: 0 1; }
    #form-error { height: auto; }
    #form-error.error { color: $error; text-style: bold; margin-bottom: 1; }
    .field-row { height: auto; }
    .field-line { height: auto; }
    .field-label { width: 20; }
    .field-input, .subject-inputs, .subject-value, .subject-pem, #method { width: 1fr; }
    .subject-inputs { height: auto; }
    .field-note { margin-left: 20; color: $text-muted; height: auto; }
    .field-row.error .field-note { color: $error; text-style: bold; }
    ConfirmScreen, SecretScreen { align: center middle; }
    .dialog { width: 72; height: auto; padding: 1 2; border: thick $primary; background: $surface; }
    .credential { margin: 0 0 1 2; }
    .note { color: $text-muted; }
    """
    # `q` quits from the screens without inputs (where it cannot be typed text); ctrl+q anywhere.
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False),
    ]

    def __init__(
        self,
        backend: AbstractAsyncContextManager[Backend],
        *,
        target: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`backend` is entered when the app starts and left when it stops; `target` says where
        it works (shown in the header); `clock` gives the time key ages are counted from."""
        super().__init__()
        self._backend_context = backend
        self._stack = AsyncExitStack()
        self._backend: Backend | None = None
        self.clock = clock
        self.sub_title = target

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise RuntimeError("the back end is not open")
        return self._backend

    async def on_mount(self) -> None:
        from certbound.tui.clients import ClientsScreen

        self._backend = await self._stack.enter_async_context(self._backend_context)
        await self.push_screen(ClientsScreen())

    async def on_unmount(self) -> None:
        await self._stack.aclose()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    # operations shared by the list and the detail screen
    def report(self, exc: Exception) -> None:
        self.notify(describe_error(exc), severity="error", markup=False)

    def report_missing(self, client_id: str) -> None:
        self.notify(f"no client {safe_for_terminal(client_id)}", severity="warning", markup=False)

    def confirm_then(self, question: Text, operation: Callable[[], Awaitable[None]]) -> None:
        """Ask `question`; on yes run `operation`, reporting the errors the operator should read."""

        async def answered(confirmed: bool | None) -> None:
            if confirmed:
                try:
                    await operation()
                except OPERATION_ERRORS as exc:
                    self.report(exc)

        self.push_screen(ConfirmScreen(question), answered)

    def delete_client(self, client_id: str, done: Callable[[], Awaitable[None]]) -> None:
        """Ask, then delete the client and its reference tokens; `done` runs afterwards."""

        async def delete() -> None:
            if await self.backend.delete(client_id):
                self.notify(f"deleted {safe_for_terminal(client_id)}", markup=False)
            else:
                self.report_missing(client_id)
            await done()

        self.confirm_then(
            Text.assemble("Delete client ", shown(client_id, "bold"), " and its tokens?"), delete
        )

    def rotate_secret(self, client_id: str, done: Callable[[], Awaitable[None]]) -> None:
        """Ask, then issue a new secret (the old one stops working at once) and show it once."""

        async def rotate() -> None:
            rotated = await self.backend.rotate(client_id)
            if rotated is None:
                self.report_missing(client_id)
            else:
                await self.push_screen(SecretScreen(rotated))
            await done()

        question = Text.assemble(
            "Issue a new secret for ", shown(client_id, "bold"), "? The old one stops working at once."
        )
        self.confirm_then(question, rotate)
