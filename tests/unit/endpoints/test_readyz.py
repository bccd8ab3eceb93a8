"""/readyz (SPEC §3): 200 only when the database answered recently and a signing key is loaded."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from certbound.app import build_context
from certbound.clients import ClientCache
from certbound.config import Settings
from certbound.context import CONTEXT, ServerContext
from certbound.endpoints.readyz import READY_WINDOW, readyz_endpoint


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def context() -> AsyncIterator[ServerContext]:
    context = await build_context(Settings(db="sqlite://:memory:"))
    yield context
    await context.store.close()


async def _readyz(context: ServerContext) -> tuple[int, dict[str, object]]:
    app = web.Application()
    app[CONTEXT] = context
    response = await readyz_endpoint(make_mocked_request("GET", "/readyz", app=app))
    assert isinstance(response.body, bytes)
    return response.status, json.loads(response.body)


async def test_ready_when_the_database_answers_and_a_key_is_loaded(context: ServerContext) -> None:
    assert await _readyz(context) == (200, {"ready": True, "database": True, "signing_key": True})


async def test_not_ready_once_the_database_stopped_answering_then_ready_again(context: ServerContext) -> None:
    clock = Clock()
    clients = ClientCache(context.store, clock=clock)
    context = dataclasses.replace(context, clients=clients)
    await clients.sync()
    clock.now += READY_WINDOW - 0.1
    assert (await _readyz(context))[0] == 200
    clock.now += 0.1  # no successful read of the change log for READY_WINDOW
    assert await _readyz(context) == (503, {"ready": False, "database": False, "signing_key": True})
    await clients.sync()
    assert (await _readyz(context))[0] == 200


async def test_never_ready_before_the_database_answered(context: ServerContext) -> None:
    context = dataclasses.replace(context, clients=ClientCache(context.store))
    assert (await _readyz(context))[0] == 503
