"""Every route of the API, and every dependency it resolves, runs on the event loop.

FastAPI runs a plain `def` endpoint or dependency in its thread pool: a thread hop per request, which on a busy
machine waits for the OS to schedule a worker thread and shows in the tail of every request. The app is built
without starting it (its lifespan is what connects), so nothing here needs a server.
"""

import inspect

from fastapi.routing import APIRoute, APIWebSocketRoute

from api.app import create_app
from core.settings import Settings


def _runs_on_loop(call) -> bool:
    """A coroutine function, or an object whose `__call__` is one (FastAPI's security schemes)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(getattr(type(call), "__call__", None))


def _calls(dependant, trail: str):
    """The endpoint and every sub-dependency of a route, each with where it was found."""
    for dependency in dependant.dependencies:
        name = getattr(dependency.call, "__qualname__", type(dependency.call).__name__)
        yield from _calls(dependency, f"{trail} -> {name}")
    if dependant.call is not None:
        yield dependant.call, trail


def _routes(routes):
    """The app's routes with their dependencies, inside the routers it includes too."""
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _routes(included.routes)


def test_no_route_or_dependency_runs_in_the_thread_pool():
    routes = list(_routes(create_app(Settings()).routes))
    assert len(routes) > 20, "the partner, dialect, robot and tracking routes are all built"
    blocking = [trail for route in routes for call, trail in _calls(route.dependant, route.path)
                if not _runs_on_loop(call)]
    assert blocking == []


def test_the_check_itself_tells_a_plain_function_from_a_coroutine():
    def plain(request): return request

    async def awaited(request): return request

    assert not _runs_on_loop(plain)
    assert _runs_on_loop(awaited)
