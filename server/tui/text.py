"""Text from the database or the server, made safe for the screen (issue 12).

Client metadata is written by whoever registered the client: a `client_name` may carry terminal
escapes (ESC, CSI, OSC sequences), bidi overrides or Textual markup. Everything the TUI shows from
a client or key is built here: non-printable characters become visible `\\x1b` / `\\u202e` escapes
(nothing reaches the terminal as a control), and the result is a Rich `Text`, which Textual never
parses as markup.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.text import Text

__all__ = ["age", "printable", "shown", "utc", "value_text"]


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: str) -> str:
    """`value` with every character that is not printable (controls, format characters such as
    bidi overrides, line and paragraph separators, unassigned code points) written as an escape.
    Spaces stay; the result holds no character a terminal would act on."""
    if value.isprintable():
        return value
    return "".join(character if character.isprintable() else _escape(character) for character in value)


def value_text(value: Any) -> str:
    """A metadata value as one printable line: strings as they are, string lists space-separated,
    booleans yes/no, anything else as compact JSON."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return printable(" ".join(value))
    return printable(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def shown(value: Any, style: str = "") -> Text:
    """A renderable for any value from a client or key: printable, never markup."""
    return Text(value_text(value), style=style)


def age(timestamp: int, now: float) -> str:
    """How long ago `timestamp` was, in its two largest units (`3d 4h`, `5m 0s`, `12s`)."""
    seconds = max(0, int(now - timestamp))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (suffix, size) in enumerate(units[:-1]):
        if seconds >= size:
            smaller, smaller_size = units[index + 1]
            return f"{seconds // size}{suffix} {seconds % size // smaller_size}{smaller}"
    return f"{seconds}s"


def utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp))
