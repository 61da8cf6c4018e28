"""The desks a route talks to, made once in the app's lifespan (`api.app`) and handed to routes as dependencies."""

from typing import Annotated

from fastapi import Depends, Request

from desks.accounts import PartnerAccounts
from desks.partner import PartnerDesk
from desks.robot import RobotDesk
from desks.sandbox import SandboxDesk
from desks.views import OrderViews


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


Accounts = Annotated[PartnerAccounts, Depends(partner_accounts)]
Partners = Annotated[PartnerDesk, Depends(partner_desk)]
Views = Annotated[OrderViews, Depends(order_views)]
Robots = Annotated[RobotDesk, Depends(robot_desk)]
Sandbox = Annotated[SandboxDesk, Depends(sandbox_desk)]
