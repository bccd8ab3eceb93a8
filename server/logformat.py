"""Log lines for operators (SPEC §3 `--log-format text|json`): text, or one JSON object per line.

Every record goes through one of the two formatters here, and they are the only place that turns
text into log lines, so no caller can forget to neutralise what it logs (issue 9 finding 8): every
character that is not printable — CR, LF and the other C0/C1 controls, DEL, Unicode line and
paragraph separators, bidirectional overrides — is written as a backslash escape (`\\n`, `\\x1b`,
`\\u2028`), in the message and in every field, in both formats. A request can therefore never
start a line of its own in the log, nor recolour or rewrite the operator's terminal. Long values
are cut, so one request cannot write megabytes.

Structured facts travel as `extra=log_fields(...)`: the JSON format writes them as members of the
line's object, the text format appends them as `name=value`, except those the message already
says (`in_message`, e.g. the access line's `POST /token 401`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "log_fields",
    "neutralise",
]

LOG_FORMATS = ("text", "json")

_FIELDS = "fields"
_IN_MESSAGE = "fields_in_message"
_MAX_MESSAGE = 4096
_MAX_FIELD = 512
_CUT = "…"
_NEEDS_QUOTES = re.compile(r'[ "=\\]')
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

FieldValue = str | int | float | bool | None


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def neutralise(text: str, limit: int = _MAX_MESSAGE) -> str:
    """`text` with every non-printable character escaped, cut to about `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + _CUT
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def log_fields(fields: Mapping[str, FieldValue], *, in_message: tuple[str, ...] = ()) -> dict[str, Any]:
    """`extra=` for a log call carrying structured fields (None values are left out); the text
    format leaves out the `in_message` ones, which the message already shows."""
    return {_FIELDS: fields, _IN_MESSAGE: in_message}


def _record_fields(record: logging.LogRecord) -> Mapping[str, FieldValue]:
    fields: Mapping[str, FieldValue] = getattr(record, _FIELDS, None) or {}
    return fields


def _exception_lines(formatter: logging.Formatter, record: logging.LogRecord) -> list[str]:
    text = ""
    if record.exc_info:
        text = formatter.formatException(record.exc_info)
    if record.stack_info:
        text = (text + "\n" if text else "") + formatter.formatStack(record.stack_info)
    return [neutralise(line) for line in text.splitlines()] if text else []


class _SecondsCache:
    """strftime once per second rather than once per line."""

    def __init__(self, layout: str, convert: Callable[[float], time.struct_time]) -> None:
        self._layout = layout
        self._convert = convert
        self._second = -1
        self._text = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime(self._layout, self._convert(second))
        return self._text


class TextFormatter(logging.Formatter):
    """`2026-01-02 10:00:00,123 INFO certbound.access: POST /token 200 name=value ...`; a
    traceback follows on indented lines (a record line always starts with its timestamp)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._seconds = _SecondsCache("%Y-%m-%d %H:%M:%S", time.localtime)

    def format(self, record: logging.LogRecord) -> str:
        record.message = neutralise(record.getMessage())
        asctime = f"{self._seconds.format(record.created)},{int(record.msecs):03d}"
        parts = [f"{asctime} {record.levelname} {record.name}: {record.message}"]
        shown: tuple[str, ...] = getattr(record, _IN_MESSAGE, ())
        for name, value in _record_fields(record).items():
            # Inline rather than a helper per field: this runs for every field of every access line.
            if value is None or name in shown:
                continue
            if isinstance(value, str):
                if len(value) > _MAX_FIELD or not value.isprintable():
                    value = neutralise(value, _MAX_FIELD)
                if not value or _NEEDS_QUOTES.search(value) is not None:
                    value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            elif isinstance(value, float):
                value = f"{value:.3f}"
            parts.append(f"{name}={value}")
        line = " ".join(parts)
        extra = _exception_lines(self, record)
        return "\n    ".join([line, *extra]) if extra else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the record's
    fields, and `exc` (the traceback) when there is one."""

    _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _SecondsCache("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, FieldValue] = {
            "time": f"{self._seconds.format(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": neutralise(record.getMessage()),
        }
        for name, value in _record_fields(record).items():
            if value is None:
                continue
            if isinstance(value, str) and (len(value) > _MAX_FIELD or not value.isprintable()):
                value = neutralise(value, _MAX_FIELD)
            line[name] = value
        extra = _exception_lines(self, record)
        if extra:
            line["exc"] = "\n".join(extra)
        return self._encoder.encode(line)


def configure_logging(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Route every logger to `stream` (stderr) through the formatter of `log_format`."""
    # Thread, process and multiprocessing names are in no line we write: skip collecting them for
    # every record (the logging module's documented optimisations).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
