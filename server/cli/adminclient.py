"""A small client of the admin API (certbound.endpoints.admin) for `certbound clients|keys|tui
--url ...` (certbound.cli.backend): `AdminClient.to(certbound.config.load_admin_target(...))`.

It speaks only HTTPS, trusts the system CAs or the `--cacert` file, and turns every error answer
into AdminAPIError carrying the status and the server's `error_description`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import aiohttp

from certbound.clientmeta import SERVER_ASSIGNED, merge_metadata
from certbound.config import CACERT_ENV, URL_ENV, AdminTarget
from certbound.errors import ConfigError

__all__ = ["AdminAPIError", "AdminClient"]

_PAGE = 500
_TIMEOUT = aiohttp.ClientTimeout(total=30)


class AdminAPIError(Exception):
    """An error answer: `status` and the OAuth error code and description it carried."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.status = status
        self.error = error
        self.description = description


def _path(client_id: str, *rest: str) -> str:
    return "/".join(("/admin/clients", quote(client_id, safe=""), *rest))


class AdminClient:
    """`async with AdminClient(url, token, cacert) as admin: await admin.show("id")`."""

    def __init__(self, url: str, token: str, cacert: Path | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise ConfigError(f"--url ({URL_ENV}) must be an https URL, not {url!r}")
        self._base = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            self._ssl = ssl.create_default_context(cafile=str(cacert) if cacert else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot read --cacert ({CACERT_ENV}) {cacert}: {exc}") from None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def to(cls, target: AdminTarget) -> Self:
        return cls(target.url, target.token, target.cacert)

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT, headers=self._headers)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        if self._session is None:
            raise RuntimeError("AdminClient is not open")
        try:
            async with self._session.request(
                method, self._base + path, json=body, params=query, ssl=self._ssl
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach {self._base}: {exc or type(exc).__name__}") from None
        try:
            value = json.loads(text) if text else None
        except ValueError:
            value = None  # e.g. a proxy's HTML error page: the status still says what happened
        if value is None and status < 400 and text:
            raise ConfigError(f"{self._base} did not answer JSON (HTTP {status})")
        if status >= 400:
            error = value if isinstance(value, dict) else {}
            raise AdminAPIError(
                status, str(error.get("error", f"HTTP {status}")), str(error.get("error_description", ""))
            )
        return value

    async def add(
        self, metadata: Mapping[str, Any], *, client_id: str | None, secret: str | None
    ) -> dict[str, Any]:
        body = dict(metadata)
        if client_id is not None:
            body["client_id"] = client_id
        if secret is not None:
            body["client_secret"] = secret
        created: dict[str, Any] = await self._call("POST", "/admin/clients", body=body)
        return created

    async def list_clients(self, *, method: str | None) -> list[dict[str, Any]]:
        clients: list[dict[str, Any]] = []
        query = {"limit": str(_PAGE)}
        if method is not None:
            query["token_endpoint_auth_method"] = method
        while True:
            page = await self._call("GET", "/admin/clients", query=query)
            clients.extend(page["clients"])
            if page["next"] is None:
                return clients
            query["after"] = page["next"]

    async def show(self, client_id: str) -> dict[str, Any] | None:
        try:
            client: dict[str, Any] = await self._call("GET", _path(client_id))
        except AdminAPIError as exc:
            if exc.status == 404:
                return None
            raise
        return client

    async def update(
        self, client_id: str, changes: Mapping[str, Any], *, secret: str | None
    ) -> dict[str, Any] | None:
        """Read, merge (as the local mode does), replace: the admin PUT takes the whole metadata."""
        current = await self.show(client_id)
        if current is None:
            return None
        metadata = {name: value for name, value in current.items() if name not in SERVER_ASSIGNED}
        body = merge_metadata(metadata, changes)
        if secret is not None:
            body["client_secret"] = secret
        try:
            updated: dict[str, Any] = await self._call("PUT", _path(client_id), body=body)
        except AdminAPIError as exc:
            if exc.status == 404:
                return None
            raise
        return updated

    async def delete(self, client_id: str) -> bool:
        try:
            await self._call("DELETE", _path(client_id))
        except AdminAPIError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def rotate(self, client_id: str) -> dict[str, Any] | None:
        try:
            rotated: dict[str, Any] = await self._call("POST", _path(client_id, "rotate-secret"))
        except AdminAPIError as exc:
            if exc.status == 404:
                return None
            raise
        return rotated

    async def list_keys(self) -> list[dict[str, Any]]:
        listed: dict[str, list[dict[str, Any]]] = await self._call("GET", "/admin/keys")
        return listed["keys"]

    async def rotate_key(self) -> dict[str, Any]:
        rotated: dict[str, Any] = await self._call("POST", "/admin/keys/rotate")
        return rotated
