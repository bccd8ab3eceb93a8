"""Request bodies and responses shared by endpoints: form and JSON bodies with size limits
(SPEC §10), duplicate-parameter refusal (RFC 6749 §3.2), JSON responses with no-store."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from certbound.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

__all__ = [
    "FORM_BODY_LIMIT",
    "JSON_BODY_LIMIT",
    "NO_STORE",
    "json_response",
    "parse_form",
    "read_body",
    "read_form",
    "read_json_object",
]

FORM_BODY_LIMIT = 64 * 1024
JSON_BODY_LIMIT = 256 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM = "application/x-www-form-urlencoded"


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes as received (chunked included)."""
    if request.content_length is not None:
        if request.content_length > limit:
            raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
        # The HTTP parser stops at Content-Length: the body cannot grow past what we checked.
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16384):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: web.Request) -> dict[str, str]:
    """RFC 6749 §3.2: form-encoded parameters; empty values count as omitted (§3.1), repeated
    parameters are refused."""
    if request.content_type != _FORM:
        raise UnsupportedMediaTypeError(f"the request body must be {_FORM}")
    return parse_form(await read_body(request, FORM_BODY_LIMIT))


def parse_form(body: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded (WHATWG URL §5.1) as RFC 6749 reads it: a parameter
    without a value is omitted (§3.1), a repeated one is refused (§3.2)."""
    try:
        text = body.decode("utf-8")
        form: dict[str, str] = {}
        for pair in text.split("&"):
            name, _, value = pair.partition("=")
            # Decoding only what is encoded: the common token request has nothing to decode.
            if "%" in value or "+" in value:
                value = unquote_plus(value, errors="strict")
            if not value:
                continue
            if "%" in name or "+" in name:
                name = unquote_plus(name, errors="strict")
            if name in form:
                raise InvalidRequestError(f"parameter {name} is repeated")
            form[name] = value
    except UnicodeError:
        raise InvalidRequestError("the request body is not valid form-encoded UTF-8") from None
    return form


async def read_json_object(request: web.Request, *, error: type[Exception]) -> dict[str, Any]:
    """A JSON object body (registration, admin); anything else raises `error`."""
    body = await read_body(request, JSON_BODY_LIMIT)
    try:
        value = json.loads(body)
    except (UnicodeError, ValueError):
        raise error("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise error("the request body must be a JSON object")
    return value


_COMPACT = json.JSONEncoder(separators=(",", ":"))


def json_response(body: Any, *, status: int = 200, cacheable: bool = False) -> web.Response:
    return web.Response(
        body=_COMPACT.encode(body).encode("utf-8"),
        status=status,
        content_type="application/json",
        headers=None if cacheable else NO_STORE,
    )
