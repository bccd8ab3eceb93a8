"""Modal dialogs: a yes/no confirmation, and a just-issued client secret shown once."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from certbound.tui.text import shown

__all__ = ["ConfirmScreen", "SecretScreen"]


class ConfirmScreen(ModalScreen[bool]):
    """Answers True for y, False for n or escape."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: Text) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._question, markup=False)
            yield Static(Text("y: yes    n: no"), classes="note", markup=False)
        yield Footer()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class SecretScreen(ModalScreen[None]):
    """A client's credentials right after they were issued: the only time the secret is shown.
    Each value is on a line of its own with nothing around it, to copy with the mouse (shift-drag
    in most terminals) or with `c` (OSC 52 clipboard)."""

    BINDINGS = [
        Binding("c", "copy", "Copy secret"),
        Binding("enter,escape", "close", "Done"),
    ]

    def __init__(self, view: dict[str, Any]) -> None:
        super().__init__()
        self._client_id = str(view["client_id"])
        self._secret = str(view["client_secret"])

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text("client_id", style="bold"), markup=False)
            yield Static(shown(self._client_id), id="client-id", classes="credential", markup=False)
            yield Static(Text("client_secret", style="bold"), markup=False)
            yield Static(shown(self._secret), id="client-secret", classes="credential", markup=False)
            yield Static(
                Text("Shown once: store it now. The server keeps only a hash."), classes="note", markup=False
            )
        yield Footer()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self._secret)
        self.notify("secret copied to the clipboard", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
