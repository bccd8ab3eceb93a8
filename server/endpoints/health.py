"""Liveness (`/healthz`) and Prometheus metrics (`/metrics`)."""

from __future__ import annotations

from aiohttp import web

from certbound.context import CONTEXT
from certbound.endpoints.http import json_response
from certbound.metrics import CONTENT_TYPE

__all__ = ["healthz_endpoint", "metrics_endpoint"]


async def healthz_endpoint(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[CONTEXT].metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
