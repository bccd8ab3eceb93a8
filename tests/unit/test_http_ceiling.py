"""scripts/http_ceiling.py and its measuring device scripts/ceiling_server.py: the per-layer table,
and the minimal responder answering exactly one response per complete request."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    """(http_ceiling, ceiling_server), imported as the scripts import them (scripts/ on sys.path)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("http_ceiling"), importlib.import_module("ceiling_server")


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True


def _responder(scripts: tuple[ModuleType, ModuleType]) -> tuple[Any, _Transport]:
    _, device = scripts
    responder = device.RawResponder(device.prepared_response(b'{"access_token":"x"}'))
    transport = _Transport()
    responder.connection_made(transport)
    return responder, transport


_REQUEST = (
    b"POST /token HTTP/1.0\r\nContent-Length: 29\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
    b"grant_type=client_credentials"
)


def test_the_responder_answers_once_per_complete_request(scripts: tuple[ModuleType, ModuleType]) -> None:
    responder, transport = _responder(scripts)
    cut = _REQUEST.index(b"\r\n\r\n") + 10  # the headers and part of the body
    responder.data_received(_REQUEST[:cut])
    assert transport.written == []
    responder.data_received(_REQUEST[cut:] + _REQUEST + _REQUEST[:5])  # the rest, one more, a start
    assert len(transport.written) == 2
    responder.data_received(_REQUEST[5:])
    assert len(transport.written) == 3
    response = transport.written[0]
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 20\r\n" in response
    assert response.endswith(b'\r\n\r\n{"access_token":"x"}')


def test_a_request_without_a_body_is_answered_at_its_blank_line(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    responder, transport = _responder(scripts)
    responder.data_received(b"GET /token HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(transport.written) == 1


def _stats(http_ceiling: ModuleType, cpu_ms: float, *, errors: int = 0) -> Any:
    row = http_ceiling.RowStats()
    row.add(
        {
            "rps": 1000.0,
            "requests": 12000,
            "non2xx": errors,
            "failed": 0,
            "p50_ms": 3.0,
            "p99_ms": 9.0,
            "server_cpu_pct": cpu_ms * 1000.0 / 10.0,
        }
    )
    return row


def test_each_row_shows_the_cpu_its_layer_adds(scripts: tuple[ModuleType, ModuleType]) -> None:
    http_ceiling, _ = scripts
    cpu = {"raw": 0.02, "aiohttp-server": 0.08, "aiohttp-app": 0.1, "certbound": 0.33}
    stats = {key: _stats(http_ceiling, value, errors=key == "certbound") for key, value in cpu.items()}
    rows = http_ceiling.render_table(stats)[2:]
    assert [row.split(" | ")[3] for row in rows] == ["0.020", "0.080", "0.100", "0.330"]
    assert [row.split(" | ")[4] for row in rows] == ["-", "+0.060 ms", "+0.020 ms", "+0.230 ms"]
    assert "**⚠ 1 / 12000**" in rows[3]
    assert "⚠" not in "".join(rows[:3])


def test_a_skipped_layer_breaks_the_steps(scripts: tuple[ModuleType, ModuleType]) -> None:
    http_ceiling, _ = scripts
    stats = {layer.key: _stats(http_ceiling, 0.1) for layer in http_ceiling.LAYERS}
    stats["aiohttp-server"] = http_ceiling.RowStats(skipped="did not start")
    rows = http_ceiling.render_table(stats)[2:]
    assert "did not start" in rows[1]
    assert rows[2].split(" | ")[4] == "-"  # nothing to subtract from
    assert rows[3].split(" | ")[4] == "+0.000 ms"


@pytest.mark.parametrize("length", [b"-5", b"x", b"99999999"])
def test_the_responder_closes_on_a_length_it_cannot_use(
    scripts: tuple[ModuleType, ModuleType], length: bytes
) -> None:
    responder, transport = _responder(scripts)
    responder.data_received(b"POST /token HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n")
    assert transport.written == []
    assert transport.closed


def test_the_responder_closes_on_a_head_that_never_ends(scripts: tuple[ModuleType, ModuleType]) -> None:
    responder, transport = _responder(scripts)
    responder.data_received(b"POST /token HTTP/1.1\r\nX: " + b"a" * 70_000)
    assert transport.closed
