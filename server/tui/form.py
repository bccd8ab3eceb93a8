"""The add/edit form: its rows follow the chosen `token_endpoint_auth_method` (certbound.tui.fields).

Creating sends what was filled in; editing sends only the fields the operator changed (an RFC 7396
merge patch, as `certbound clients update`), so a value shown with its escapes is never written
back. A server refusal appears next to the field its description names (SPEC §9: descriptions
start with the member), or above the form when it names none of the visible fields. A secret the
operator chose is not shown back; advice on a doubtful registration is a warning notification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Select, Static

from certbound.cli.terminal import safe_for_terminal
from certbound.clientadvice import client_warnings
from certbound.clientmeta import metadata_error_field
from certbound.pki.subject import SUBJECT_FIELDS
from certbound.tui.app import OPERATION_ERRORS, CertboundApp, describe_error
from certbound.tui.fields import (
    FLAG_CHOICES,
    Field,
    FieldError,
    Kind,
    fields_for,
    offered_methods,
    subject_contribution,
    subject_of,
)
from certbound.tui.sources import SourceError, read_subject
from certbound.tui.text import value_text

__all__ = ["ClientFormScreen", "FieldRow", "SubjectRow"]

_METHOD_MEMBER = "token_endpoint_auth_method"
#: Server errors whose description names a metadata member (RFC 7591 §3.2.2).
_METADATA_ERRORS = ("invalid_client_metadata", "invalid_redirect_uri")


class FieldRow(Vertical):
    """One field: its label, its input (a text input shows the hint as its placeholder), and a
    note line under it for an error, or for the hint of a selector."""

    def __init__(self, field: Field, initial: str, *, row_id: str) -> None:
        super().__init__(id=row_id, classes="field-row")
        self.field = field
        self.initial: object = initial
        self._initial_text = initial

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Static(Text(self.field.label), classes="field-label", markup=False)
            yield from self.inputs()
        note = Static(Text(self._hint()), classes="field-note", markup=False)
        note.display = bool(self._hint())
        yield note

    def _hint(self) -> str:
        return self.field.hint if self.field.kind in (Kind.FLAG, Kind.CHOICE) else ""

    def inputs(self) -> ComposeResult:
        kind, value = self.field.kind, self._initial_text
        if kind in (Kind.FLAG, Kind.CHOICE):
            choices = FLAG_CHOICES if kind is Kind.FLAG else self.field.choices
            yield Select(
                [(choice, choice) for choice in choices],
                prompt="default",
                value=value if value in choices else Select.NULL,
                compact=True,
                classes="field-input",
            )
        else:
            yield Input(
                value,
                placeholder=self.field.hint,
                password=kind is Kind.SECRET,
                compact=True,
                classes="field-input",
            )

    def raw(self) -> object:
        widget = self.query_one(".field-input")
        if isinstance(widget, Select):
            return widget.value if isinstance(widget.value, str) else ""
        return cast(Input, widget).value

    def changed(self) -> bool:
        return self.raw() != self.initial

    def contribution(self) -> dict[str, Any]:
        return self.field.contribution(str(self.raw()))

    def set_error(self, message: str | None) -> None:
        note = self.query_one(".field-note", Static)
        text = message if message is not None else self._hint()
        note.update(Text(text))
        note.display = bool(text)
        self.set_class(message is not None, "error")

    def focus_input(self) -> None:
        self.query_one(".field-input").focus()


class SubjectRow(FieldRow):
    """RFC 8705 §2.1.2: which one subject field, its value, and a PEM certificate to read it from."""

    def __init__(self, field: Field, view: dict[str, Any], *, row_id: str) -> None:
        member, value = subject_of(view)
        super().__init__(field, value, row_id=row_id)
        self._member = member
        self.initial = (member, value)

    def inputs(self) -> ComposeResult:
        with Vertical(classes="subject-inputs"):
            yield Select(
                [(member.removeprefix("tls_client_auth_"), member) for member in SUBJECT_FIELDS],
                value=self._member,
                allow_blank=False,
                compact=True,
                classes="field-input subject-kind",
            )
            yield Input(self._initial_text, placeholder="value", compact=True, classes="subject-value")
            yield Input(
                placeholder="or a PEM certificate's path, then Enter", compact=True, classes="subject-pem"
            )

    def _member_value(self) -> tuple[str, str]:
        member = self.query_one(".subject-kind", Select).value
        return str(member), self.query_one(".subject-value", Input).value

    def raw(self) -> object:
        return self._member_value()

    def contribution(self) -> dict[str, Any]:
        return subject_contribution(*self._member_value())

    @on(Input.Submitted, ".subject-pem")
    def _read_certificate(self, event: Input.Submitted) -> None:
        event.stop()
        member, _ = self._member_value()
        try:
            value = read_subject(Path(event.value.strip()), member)
        except SourceError as exc:
            self.set_error(safe_for_terminal(str(exc)))
            return
        self.query_one(".subject-value", Input).value = value
        self.set_error(None)


class ClientFormScreen(Screen[dict[str, Any] | None]):
    """Add a client (`view` None) or edit one; dismissed with the server's answer, or None."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, view: dict[str, Any] | None) -> None:
        super().__init__()
        self._view = view
        self._method = str(view.get(_METHOD_MEMBER, "client_secret_basic")) if view else "client_secret_basic"
        methods = offered_methods()
        if self._method not in methods:
            methods.append(self._method)
        self._methods = methods
        # Every field of every method, once; the method shows its own.
        fields: dict[Field, None] = {}
        for method in methods:
            fields.update(dict.fromkeys(fields_for(method)))
        self._fields = [field for field in fields if not (field.create_only and view is not None)]

    @property
    def certbound(self) -> CertboundApp:
        return cast(CertboundApp, self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="form"):
            yield Static(id="form-error", markup=False)
            with Horizontal(classes="field-line"):
                yield Static(Text("Method"), classes="field-label", markup=False)
                yield Select(
                    [(method, method) for method in self._methods],
                    value=self._method,
                    allow_blank=False,
                    compact=True,
                    id="method",
                )
            view = self._view or {}
            for index, field in enumerate(self._fields):
                row_id = f"field-{index}"
                if field.kind is Kind.SUBJECT:
                    yield SubjectRow(field, view, row_id=row_id)
                else:
                    yield FieldRow(field, field.initial(view), row_id=row_id)
        yield Footer()

    def on_mount(self) -> None:
        if self._view is None:
            self.sub_title = "new client"
        else:
            self.sub_title = f"edit {value_text(self._view['client_id'])}"
        self._show_fields()
        self.query_one("#method", Select).focus()

    def _selected_method(self) -> str:
        return str(self.query_one("#method", Select).value)

    def _rows(self) -> list[FieldRow]:
        return list(self.query(FieldRow))

    def _visible_rows(self) -> list[FieldRow]:
        wanted = fields_for(self._selected_method())
        return [row for row in self._rows() if row.field in wanted]

    def _show_fields(self) -> None:
        wanted = fields_for(self._selected_method())
        for row in self._rows():
            row.display = row.field in wanted

    @on(Select.Changed, "#method")
    def _method_changed(self) -> None:
        self._show_fields()

    def _clear_errors(self) -> None:
        for row in self._rows():
            row.set_error(None)
        self.query_one("#form-error", Static).update("")
        self.query_one("#form-error").remove_class("error")

    def _general_error(self, message: str) -> None:
        error = self.query_one("#form-error", Static)
        error.update(Text(message))
        error.add_class("error")
        self.query_one("#form", VerticalScroll).scroll_home(animate=False)

    def show_server_error(self, error: str, description: str) -> None:
        """Next to the field the description names, else above the form."""
        member = metadata_error_field(description) if error in _METADATA_ERRORS else None
        message = safe_for_terminal(description or error)
        if member == _METHOD_MEMBER:
            self._general_error(f"{_METHOD_MEMBER}: {message}")
            self.query_one("#method", Select).focus()
            return
        for row in self._visible_rows():
            if member is not None and member in row.field.members:
                row.set_error(message)
                row.focus_input()
                self.query_one("#form", VerticalScroll).scroll_to_widget(row, animate=False)
                return
        self._general_error(safe_for_terminal(f"{error}: {description}" if description else error))

    def _collect(self, rows: list[FieldRow]) -> dict[str, Any] | None:
        """The members the rows set; None (errors shown) when one cannot be read."""
        collected: dict[str, Any] = {}
        failed = False
        for row in rows:
            try:
                collected.update(row.contribution())
            except FieldError as exc:
                row.set_error(safe_for_terminal(str(exc)))
                failed = True
        return None if failed else collected

    async def action_save(self) -> None:
        self._clear_errors()
        method = self._selected_method()
        if self._view is None:
            rows = self._visible_rows()
        else:
            rows = [row for row in self._visible_rows() if row.changed()]
        collected = self._collect(rows)
        if collected is None:
            return
        client_id = collected.pop("client_id", None)
        secret = collected.pop("client_secret", None)
        result: dict[str, Any] | None
        try:
            if self._view is None:
                metadata = {name: value for name, value in collected.items() if value is not None}
                metadata[_METHOD_MEMBER] = method
                result = await self.certbound.backend.add(metadata, client_id=client_id, secret=secret)
            else:
                result = await self._update(self._view, method, collected, secret)
                if result is None:
                    return
        except OPERATION_ERRORS as exc:
            error = getattr(exc, "error", "")
            description = getattr(exc, "description", "")
            if error in _METADATA_ERRORS:
                self.show_server_error(error, description)
            else:
                self._general_error(describe_error(exc))
            return
        shown_id = safe_for_terminal(str(result["client_id"]))
        if secret is not None:
            # As in `certbound clients`: a secret the operator gave (typed hidden) is not shown back.
            result = {name: value for name, value in result.items() if name != "client_secret"}
            self.app.notify(f"client {shown_id} saved with the secret you gave", markup=False)
        # The advice `certbound clients` prints as warnings (certbound.clientadvice).
        for warning in client_warnings(result, secret):
            self.app.notify(
                f"client {shown_id}: {safe_for_terminal(warning)}", severity="warning", markup=False
            )
        self.dismiss(result)

    async def _update(
        self, view: dict[str, Any], method: str, changes: dict[str, Any], secret: str | None
    ) -> dict[str, Any] | None:
        client_id = str(view["client_id"])
        old_method = str(view.get(_METHOD_MEMBER, ""))
        if method != old_method:
            changes[_METHOD_MEMBER] = method
            # What only the old method used goes away (keys, a subject, a signing alg).
            kept = {member for field in fields_for(method) for member in field.members}
            for field in fields_for(old_method):
                if field.kind is not Kind.SECRET and not field.create_only:
                    for member in field.members:
                        if member not in kept:
                            changes.setdefault(member, None)
        if not changes and secret is None:
            self.notify("nothing changed", markup=False)
            self.dismiss(None)
            return None
        updated = await self.certbound.backend.update(client_id, changes, secret=secret)
        if updated is None:
            self._general_error(f"no client {safe_for_terminal(client_id)}: it was deleted meanwhile")
        return updated

    def action_cancel(self) -> None:
        self.dismiss(None)
