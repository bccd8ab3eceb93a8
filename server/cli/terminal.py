"""Text for an operator's terminal (issue 9 finding 10): client metadata is whatever a registering
client sent, so nothing from the database or a server reaches the terminal raw.

Escaped, as visible `\\x1b`, `\\u202e`...: control characters (C0 with ESC, DEL, and C1, which some
terminals take as CSI), format characters (the bidirectional overrides and isolates of "Trojan
Source", CVE-2021-42574, zero-width characters), lone surrogates (which would make printing fail)
and the line and paragraph separators. JSON output escapes the same characters as JSON `\\uXXXX`,
so it stays valid JSON with the same value: `ensure_ascii=False` alone lets C1, DEL and the
bidirectional controls through.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

__all__ = ["json_for_terminal", "safe_for_terminal"]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _python_escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # RFC 8259 §7: a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _escape(text: str, escape: Callable[[str], str]) -> str:
    if text.isprintable():  # the common case; also true for nothing unsafe
        return text
    return "".join(escape(char) if _unsafe(char) else char for char in text)


def safe_for_terminal(text: str) -> str:
    """`text` with every character that could act on a terminal written as a visible escape; a
    newline too, so one value stays on one line of a table."""
    return _escape(text, _python_escape)


def json_for_terminal(value: Any) -> str:
    """Indented JSON of `value`, non-ASCII text kept readable, unsafe characters as `\\uXXXX`."""
    # Outside strings JSON is ASCII with plain newlines and spaces, which json.dumps writes
    # itself: every unsafe character left is inside a string, where \uXXXX means the same.
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return "\n".join(_escape(line, _json_escape) for line in text.split("\n"))
