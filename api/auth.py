"""Who is calling: a partner by API key, or a robot by its device credential."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from core.services import Service
from services.device import repository as devices
from services.device.models import Deployment
from services.integrations import credentials as partner_credentials
from services.integrations.models import CredentialKind, Partner

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <credential>`")


def _credential(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "unauthorized", "missing bearer credential", headers={"WWW-Authenticate": "Bearer"})
    return credentials.credentials


async def partner_from_key(request: Request,
                           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Partner:
    """The partner whose API key is presented (native and Olo dialects), within its rate limit."""
    async with request.app.state.databases.sessions(Service.INTEGRATIONS).begin() as session:
        partner = await partner_credentials.partner_by_secret(session, CredentialKind.API_KEY, _credential(credentials))
    if partner is None:
        raise ApiError(401, "unauthorized", "unknown or expired API key", headers={"WWW-Authenticate": "Bearer"})
    return admitted(request, partner)


def admitted(request: Request, partner: Partner) -> Partner:
    """The partner, once its request fits its rate limit (429 with Retry-After otherwise)."""
    request.app.state.rate_limiter.admit(partner.id)
    return partner


async def robot_from_credential(request: Request,
                                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                                ) -> Deployment:
    """The active deployment of the robot whose device credential is presented."""
    async with request.app.state.databases.sessions(Service.DEVICE).begin() as session:
        deployment = await devices.authenticate(session, _credential(credentials))
    if deployment is None:
        raise ApiError(401, "unauthorized", "unknown or retired device credential",
                       headers={"WWW-Authenticate": "Bearer"})
    return deployment


CurrentPartner = Annotated[Partner, Depends(partner_from_key)]
CurrentRobot = Annotated[Deployment, Depends(robot_from_credential)]
