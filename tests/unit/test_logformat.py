"""The log formatters: one line per record, no raw control character, text and JSON alike."""

from __future__ import annotations

import io
import json
import logging

import pytest

from certbound.logformat import JsonFormatter, TextFormatter, configure_logging, log_fields, neutralise

FORGED = "x\r\n2026-01-01 00:00:00,000 INFO certbound.access: POST /admin 200\x1b[2J\u2028\x85\u202e"


def _record(message: str, *args: object, fields: dict[str, object] | None = None) -> logging.LogRecord:
    record = logging.LogRecord("certbound.test", logging.INFO, __file__, 1, message, args, None)
    if fields is not None:
        for name, value in log_fields(fields).items():  # type: ignore[arg-type]
            setattr(record, name, value)
    return record


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u202e"])
def test_every_non_printable_character_is_escaped(char: str) -> None:
    escaped = neutralise(f"a{char}b")
    assert char not in escaped
    assert escaped.startswith("a\\")
    assert escaped.endswith("b")


def test_printable_text_is_kept_as_is() -> None:
    assert neutralise("client é 客户 /token?x=1") == "client é 客户 /token?x=1"


def test_long_text_is_cut() -> None:
    assert len(neutralise("a" * 10_000, 100)) == 101


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_a_forged_line_in_the_message_or_a_field_stays_on_one_line(formatter: logging.Formatter) -> None:
    line = formatter.format(_record("refused %s", FORGED, fields={"client_id": FORGED, "status": 401}))
    assert len(line.splitlines()) == 1
    assert all(char.isprintable() for char in line)
    shown = json.loads(line)["message"] if isinstance(formatter, JsonFormatter) else line
    assert "\\r\\n2026-01-01" in shown


def test_json_lines_parse_and_keep_field_types() -> None:
    parsed = json.loads(
        JsonFormatter().format(_record("hello", fields={"status": 401, "client_id": "c", "none": None}))
    )
    assert parsed["message"] == "hello"
    assert parsed["status"] == 401
    assert parsed["client_id"] == "c"
    assert "none" not in parsed
    assert parsed["level"] == "INFO"
    assert parsed["logger"] == "certbound.test"
    assert parsed["time"].endswith("Z")


def test_text_fields_are_name_value_and_quoted_when_needed() -> None:
    line = TextFormatter().format(_record("GET / 200", fields={"a": "plain", "b": 'two "words"', "c": 1.5}))
    assert line.endswith('GET / 200 a=plain b="two \\"words\\"" c=1.500')


def test_text_leaves_out_the_fields_its_message_shows() -> None:
    record = _record("GET / 200")
    for name, value in log_fields({"method": "GET", "id": "r1"}, in_message=("method",)).items():
        setattr(record, name, value)
    assert TextFormatter().format(record).endswith("GET / 200 id=r1")
    assert json.loads(JsonFormatter().format(record))["method"] == "GET"


def _exception_record() -> logging.LogRecord:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
        return record


def test_a_traceback_is_indented_in_text_and_one_member_in_json() -> None:
    text = TextFormatter().format(_exception_record()).split("\n")
    assert all(line.startswith("    ") for line in text[1:])
    assert any(line.startswith("    ValueError: bad") for line in text)
    parsed = json.loads(JsonFormatter().format(_exception_record()))
    assert "ValueError: bad\nvalue" in parsed["exc"]


@pytest.mark.parametrize(("log_format", "parse"), [("json", json.loads), ("text", str)])
def test_configure_logging_routes_every_logger_through_the_formatter(log_format: str, parse: object) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("info", log_format, stream)
        logging.getLogger("certbound.anything").info("one %s", "\n")
        logging.getLogger("certbound.anything").debug("not shown")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "one \\n" in (json.loads(lines[0])["message"] if log_format == "json" else lines[0])
