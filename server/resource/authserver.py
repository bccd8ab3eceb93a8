"""The resource server's HTTP client for its authorization server: RFC 8414 metadata, the JWK Set
and RFC 7662 introspection requests, each answer size-bounded and parsed as JSON.

AuthorizationServerError means the AS could not be reached or answered something unusable: the
token's validity is then unknown, which is not the token's fault (the glue answers 503).
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

import aiohttp
from aiohttp import hdrs

__all__ = ["AuthorizationServer", "AuthorizationServerError", "basic_authorization"]

#: Larger answers from the AS (metadata, JWK Set, introspection) are refused.
_MAX_RESPONSE_BYTES = 256 * 1024


class AuthorizationServerError(Exception):
    """The authorization server could not be reached or answered something unusable."""


def basic_authorization(client_id: str, secret: str) -> str:
    """client_secret_basic credentials (RFC 6749 §2.3.1): form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path.rstrip('/')}"


class AuthorizationServer:
    """`issuer`'s endpoints over HTTPS; `ca_file` adds a CA trusted for its TLS certificate to the
    system's. One aiohttp session, opened on first use; `close()` it."""

    def __init__(self, issuer: str, *, ca_file: str | Path | None = None, timeout: float = 10.0) -> None:
        self.issuer = issuer
        self._ssl = ssl.create_default_context()
        if ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(ca_file))
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None

    async def endpoint(self, name: str) -> str:
        """An endpoint from the AS's metadata (RFC 8414), fetched once."""
        if self._metadata is None:
            metadata = await self.request_json(_metadata_url(self.issuer))
            if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
                # RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
                raise AuthorizationServerError("the authorization server's metadata names another issuer")
            self._metadata = metadata
        value = self._metadata.get(name)
        if not isinstance(value, str) or not value.startswith("https://"):
            raise AuthorizationServerError(f"the authorization server's metadata has no https {name}")
        return value

    async def request_json(
        self, url: str, *, data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> object:
        """GET `url` (POST when `data` is given) and parse the JSON of a 200 answer."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl), timeout=self._timeout
            )
        method = hdrs.METH_GET if data is None else hdrs.METH_POST
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as response:
                body = bytearray()
                async for chunk in response.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > _MAX_RESPONSE_BYTES:
                        raise AuthorizationServerError(
                            f"{url} answered more than {_MAX_RESPONSE_BYTES} bytes"
                        )
                if response.status != 200:
                    raise AuthorizationServerError(f"{url} answered HTTP {response.status}")
                return json.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuthorizationServerError(f"{url}: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
