#!/usr/bin/env python3
"""A measuring device for scripts/http_ceiling.py: certbound's TLS layer with one HTTP layer on top,
answering every request with the anchor's fixed token-sized JSON (ceiling/fixed-response.json).

Not a server for anything else: it has no routes, no limits and no deadlines. Each `--layer` adds
one piece of what `certbound serve` runs, so that the CPU a request costs can be split by layer:

- `raw`: the TLS layer (`certbound.tls.start_tls_server`, the server context `serve` builds: TLS
  1.2-1.3, a client certificate requested) and a minimal HTTP/1.1 responder: find the end of the
  headers, skip `Content-Length` bytes of body, write the prepared response. What a lean HTTP path
  could not go below.
- `aiohttp-server`: the TLS layer and aiohttp's low-level `web.Server`, as certbound's handler
  protocol sits on it: the request parser, `BaseRequest`, a task per request, `web.Response`.
- `aiohttp-app`: the same with a `web.Application` and one POST route (router, middleware chain).

    .venv/bin/python scripts/ceiling_server.py --layer raw --port 19610 \\
        --tls-cert PKI/server.crt --tls-key PKI/server.key --client-ca PKI/client-ca.crt \\
        --response ANCHOR/ceiling/fixed-response.json

Prints `listening on https://127.0.0.1:PORT` when ready; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import uvloop
from aiohttp import web

from certbound.tls.context import build_server_context
from certbound.tls.transport import start_tls_server

__all__ = ["LAYERS", "RawResponder", "main"]

LAYERS = ("raw", "aiohttp-server", "aiohttp-app")
_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
#: A request head or body beyond this, or a Content-Length that is not a number, closes the
#: connection: the device trusts ab, but must not loop or grow on anything else.
_MAX_REQUEST = 64 * 1024


def prepared_response(body: bytes) -> bytes:
    """The whole keep-alive response, headers as `serve` sends for a token (no-store)."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
        b"Pragma: no-cache\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    return head + body


class RawResponder(asyncio.Protocol):
    """Answers each complete request (headers, then Content-Length bytes) with `response`."""

    __slots__ = ("_buffer", "_response", "_transport")

    def __init__(self, response: bytes) -> None:
        self._response = response
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        buffer = self._buffer + data
        while (end := buffer.find(_HEAD_END)) >= 0:
            length = _content_length(buffer[:end])
            if length is None or length > _MAX_REQUEST:
                transport.close()
                return
            size = end + len(_HEAD_END) + length
            if len(buffer) < size:
                break
            buffer = buffer[size:]
            transport.write(self._response)
        if len(buffer) > _MAX_REQUEST:
            transport.close()
            return
        self._buffer = buffer


def _content_length(head: bytes) -> int | None:
    """The request's Content-Length (0 without one), None when it is not a decimal number."""
    start = head.lower().find(_CONTENT_LENGTH)
    if start < 0:
        return 0
    start += len(_CONTENT_LENGTH)
    stop = head.find(b"\r\n", start)
    value = head[start : stop if stop >= 0 else len(head)].strip()
    return int(value) if value.isdigit() else None


async def _aiohttp_server(layer: str, body: bytes) -> web.Server:
    async def answer(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    if layer == "aiohttp-server":
        return web.Server(answer)
    app = web.Application()
    app.router.add_post("/token", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server = runner.server
    assert server is not None
    return server


async def _serve(args: argparse.Namespace) -> None:
    context = build_server_context(args.tls_cert, args.tls_key, client_ca_names=[args.client_ca])
    body = args.response.read_bytes()
    factory: Callable[[], asyncio.Protocol]
    if args.layer == "raw":
        response = prepared_response(body)

        def factory() -> asyncio.Protocol:
            return RawResponder(response)

    else:
        factory = await _aiohttp_server(args.layer, body)
    server = await start_tls_server(factory, context, "127.0.0.1", args.port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    print(f"listening on https://127.0.0.1:{args.port} ({args.layer})", flush=True)
    await stopped.wait()
    server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layer", choices=LAYERS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert", type=Path, required=True)
    parser.add_argument("--tls-key", type=Path, required=True)
    parser.add_argument("--client-ca", type=Path, required=True)
    parser.add_argument("--response", type=Path, required=True, help="the response body (JSON)")
    uvloop.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
