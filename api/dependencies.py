"""The desks a route talks to, made once in the app's lifespan (`api.app`) and handed to routes as dependencies."""

from typing import Annotated

from fastapi import Depends, Request

from desks.partner import PartnerDesk
from desks.robot import RobotDesk


def partner_desk(request: Request) -> PartnerDesk:
    return request.app.state.partner_desk


def robot_desk(request: Request) -> RobotDesk:
    return request.app.state.robot_desk


Partners = Annotated[PartnerDesk, Depends(partner_desk)]
Robots = Annotated[RobotDesk, Depends(robot_desk)]
