"""Readiness (`/readyz`, SPEC §3): 200 only when the database answers and a signing key is loaded.

Answered from state the background jobs keep (certbound.maintenance), never by a query of its own:
a load balancer (or anyone) probing it costs the database nothing. "The database answers" means
the client change log, read every 0.25 s, was read successfully within READY_WINDOW.
"""

from __future__ import annotations

from aiohttp import web

from certbound.context import CONTEXT
from certbound.endpoints.http import json_response

__all__ = ["READY_WINDOW", "readyz_endpoint"]

#: Seconds since the database last answered after which this process says it is not ready; a few
#: polls, so one slow poll under load does not take the node out of its load balancer.
READY_WINDOW = 2.0


async def readyz_endpoint(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    checks = {
        "database": context.clients.synced_within(READY_WINDOW),
        "signing_key": context.keys.has_active_key,
    }
    ready = all(checks.values())
    return json_response({"ready": ready, **checks}, status=200 if ready else 503)
