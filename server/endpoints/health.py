"""Liveness (`/healthz`) and Prometheus metrics (`/metrics`)."""

from __future__ import annotations

from aiohttp import web

from certbound.context import CONTEXT
from certbound.endpoints.http import json_response

__all__ = ["healthz_endpoint", "metrics_endpoint"]


async def healthz_endpoint(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[CONTEXT].metrics.render(), content_type="text/plain", charset="utf-8"
    )
