"""What the TUI shows of client and key data: never a control character, never markup."""

from __future__ import annotations

import pytest
from rich.text import Text

from certbound.tui.text import age, shown, value_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Billing", "Billing"),
        ("a b", "a b"),
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("x\u202ey", "x\\u202ey"),  # bidi override (a format character)
        ("line\nbreak\ttab\r", "line\\x0abreak\\x09tab\\x0d"),
        ("\x9b31m", "\\x9b31m"),  # the 8-bit CSI
        ("\u2028", "\\u2028"),
        ("\U000e0001", "\\U000e0001"),
        ("Zürich 東京", "Zürich 東京"),
    ],
)
def test_text_escapes_every_control(raw: str, expected: str) -> None:
    assert value_text(raw) == expected
    assert value_text(raw).isprintable()


def test_markup_is_text() -> None:
    text = shown("[bold]x[/bold] [link=https://evil.example]y[/]")
    assert isinstance(text, Text)
    assert text.plain == "[bold]x[/bold] [link=https://evil.example]y[/]"
    assert text.spans == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "yes"),
        (False, "no"),
        (["client_credentials", "refresh_token"], "client_credentials refresh_token"),
        ({"keys": [{"kty": "EC"}]}, '{"keys":[{"kty":"EC"}]}'),
        ({"k": "\x1b"}, '{"k":"\\u001b"}'),
        (3, "3"),
        (["a\x1b"], "a\\x1b"),
    ],
)
def test_value_text(value: object, expected: str) -> None:
    assert value_text(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (59, "59s"), (60, "1m 0s"), (3725, "1h 2m"), (90061, "1d 1h"), (-5, "0s")],
)
def test_age(seconds: int, expected: str) -> None:
    assert age(1_000_000, 1_000_000 + seconds) == expected
