"""Text from the database or the server, made safe for the screen (issue 12).

Client metadata is written by whoever registered the client: a `client_name` may carry terminal
escapes (ESC, CSI, OSC sequences), bidi overrides or Textual markup. Everything the TUI shows from
a client or key is built here: what a terminal would act on becomes a visible `\\x1b` / `\\u202e`
escape, as in the CLI's output (certbound.cli.terminal.safe_for_terminal, the one rule for both),
and the result is a Rich `Text`, which Textual never parses as markup.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.text import Text

from certbound.cli.terminal import safe_for_terminal

__all__ = ["age", "shown", "utc", "value_text"]


def value_text(value: Any) -> str:
    """A metadata value as one line with nothing a terminal acts on: strings as they are, string
    lists space-separated, booleans yes/no, anything else as compact JSON."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return safe_for_terminal(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return safe_for_terminal(" ".join(value))
    return safe_for_terminal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def shown(value: Any, style: str = "") -> Text:
    """A renderable for any value from a client or key: escaped, never markup."""
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
