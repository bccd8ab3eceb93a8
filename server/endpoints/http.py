"""Request bodies and responses shared by endpoints: form and JSON bodies with size limits
(SPEC §10), duplicate-parameter refusal (RFC 6749 §3.2), JSON responses with no-store."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from certbound.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

__all__ = [
    "FORM_BODY_LIMIT",
    "JSON_BODY_LIMIT",
    "JSON_MAX_DEPTH",
    "NO_STORE",
    "json_response",
    "parse_form",
    "parse_json_object",
    "read_body",
    "read_form",
    "read_json_object",
]

FORM_BODY_LIMIT = 64 * 1024
JSON_BODY_LIMIT = 256 * 1024
#: Deepest nesting a JSON body may have. RFC 7591 metadata needs 5 (the body, jwks, keys, a key, its
#: x5c); the rest is room for extensions. Python's parser recurses once per level, so without a
#: bound a body of 256 KiB of `[` is a RecursionError (a 500), and deep values break later code.
JSON_MAX_DEPTH = 16
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
    return parse_json_object(await read_body(request, JSON_BODY_LIMIT), error=error)


#: Brackets of both kinds as one pair of parentheses; every other byte is deleted (UTF-8 never uses
#: ASCII bytes inside a multi-byte character).
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


def _nests_within(body: bytes, depth: int) -> bool:
    """Whether the brackets outside strings are balanced and nest at most `depth` deep, found
    with a few linear passes of C string operations before the recursive parser runs.

    Escapes go first, pairwise from the left as JSON reads them (escaped backslashes, then escaped
    quotes), so every quote left opens or closes a string; splitting on quotes, the even pieces are
    outside strings. Each pass then removes the innermost pairs, one level; `depth + 1` opening
    brackets in a row end it early. Whether a `[` is closed by a `]` is the parser's business: it
    stops at a mismatch, no deeper than counted here.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = b"".join(unescaped.split(b'"')[::2]).translate(_OPEN_CLOSE, _NOT_BRACKETS)
    too_deep = b"(" * (depth + 1)
    for _ in range(depth):
        if too_deep in structure:
            return False
        reduced = structure.replace(b"()", b"")
        if reduced == structure:  # empty, or unbalanced
            break
        structure = reduced
    return not structure


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: Python reads infinity, which JSON cannot write back
        raise ValueError("number out of range")
    return number


def parse_json_object(body: bytes, *, error: type[Exception]) -> dict[str, Any]:
    """RFC 8259 JSON whose top level is an object, nested at most JSON_MAX_DEPTH deep, with finite
    numbers (no NaN or Infinity, which are not JSON); anything else raises `error`."""
    try:
        text = body.decode("utf-8")
    except UnicodeError:
        raise error("the request body is not UTF-8 JSON") from None
    if not _nests_within(body, JSON_MAX_DEPTH):
        raise error(f"the request body is not JSON, or nests deeper than {JSON_MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError:
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
