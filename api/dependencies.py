"""The desks a route talks to, made once in the app's lifespan (`api.app`) and handed to routes as dependencies."""

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from desks.accounts import PartnerAccounts
from desks.partner import PartnerDesk
from desks.robot import RobotDesk
from desks.sandbox import SandboxDesk
from desks.views import OrderViews

T = TypeVar("T")


def partner_accounts(request: Request) -> PartnerAccounts:
    return request.app.state.partner_accounts


def partner_desk(request: Request) -> PartnerDesk:
    return request.app.state.partner_desk


def order_views(request: Request) -> OrderViews:
    return request.app.state.order_views


def robot_desk(request: Request) -> RobotDesk:
    return request.app.state.robot_desk


def sandbox_desk(request: Request) -> SandboxDesk:
    return request.app.state.sandbox_desk


def on_loop(accessor: Callable[[Request], T]) -> Callable:
    """The accessor as a coroutine, which FastAPI calls on the event loop. A plain `def` dependency it would run in
    its thread pool: a thread hop per request, waiting for the OS to schedule a worker thread and then the loop
    again, which on a busy machine shows in the tail of every request (`tests/test_api_routes.py`)."""
    async def dependency(request: Request) -> T:
        return accessor(request)
    return dependency


Accounts = Annotated[PartnerAccounts, Depends(on_loop(partner_accounts))]
Partners = Annotated[PartnerDesk, Depends(on_loop(partner_desk))]
Views = Annotated[OrderViews, Depends(on_loop(order_views))]
Robots = Annotated[RobotDesk, Depends(on_loop(robot_desk))]
Sandbox = Annotated[SandboxDesk, Depends(on_loop(sandbox_desk))]
