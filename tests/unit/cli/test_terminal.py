"""Issue 9 finding 10: nothing a registering client sent acts on the operator's terminal."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certbound.cli.terminal import json_for_terminal, safe_for_terminal

#: What a terminal (or the bidi algorithm) acts on; newline is only allowed where JSON puts it.
UNSAFE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Any code point, lone surrogates included (JSON can carry them: "\ud800").
ANY_TEXT = st.text(st.characters(exclude_categories=()))
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil\u2066\x7f\r\n\u2028\ud800\U000e0041"


def acts_on_terminal(text: str, *, allow_newline: bool = False) -> list[str]:
    return [
        char for char in text if unicodedata.category(char) in UNSAFE and not (allow_newline and char == "\n")
    ]


def test_text_is_escaped_visibly() -> None:
    escaped = safe_for_terminal(HOSTILE)
    assert acts_on_terminal(escaped) == []
    assert escaped == (
        "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202eevil\\u2066\\x7f\\x0d\\x0a\\u2028\\ud800\\U000e0041"
    )


@pytest.mark.parametrize("text", ["plain", "Café Zürich", "名前", "Billing \U0001f4bb", "a b\\x1b"])
def test_printable_text_is_unchanged(text: str) -> None:
    assert safe_for_terminal(text) == text


def test_json_output_escapes_what_ensure_ascii_false_lets_through() -> None:
    value = {"client_name": HOSTILE, "x_list": ["\u009b", "ok é"], "x_astral": "\U000e0041"}
    raw = json.dumps(value, indent=2, ensure_ascii=False)
    assert acts_on_terminal(raw, allow_newline=True)  # the bug: C1, DEL, bidi, U+2028 stay raw
    text = json_for_terminal(value)
    assert acts_on_terminal(text, allow_newline=True) == []
    assert json.loads(text) == value  # still JSON, same value
    assert "ok é" in text  # readable non-ASCII stays
    text.encode("utf-8")  # a lone surrogate no longer makes printing fail


@given(st.recursive(ANY_TEXT, lambda inner: st.lists(inner, max_size=3), max_leaves=8))
def test_any_value_prints_as_equal_json_with_nothing_unsafe(value: object) -> None:
    text = json_for_terminal({"v": value})
    assert json.loads(text) == {"v": value}
    assert acts_on_terminal(text, allow_newline=True) == []


@given(ANY_TEXT)
def test_any_text_prints_on_one_line_with_nothing_unsafe(text: str) -> None:
    assert acts_on_terminal(safe_for_terminal(text)) == []
