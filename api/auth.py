"""Who is calling: a partner by API key, DoorDash JWT or Uber access token, or a robot by its device credential."""

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.dependencies import partner_accounts, robot_desk
from api.errors import ApiError
from core.contracts import Deployment
from desks.dialects import PartnerDialect
from desks.orders import PartnerAccount

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <credential>`")


def _credential(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "unauthorized", "missing bearer credential", headers={"WWW-Authenticate": "Bearer"})
    return credentials.credentials


async def partner_by_key(request: Request, credentials: HTTPAuthorizationCredentials | None,
                         dialect: PartnerDialect) -> PartnerAccount:
    """The partner whose API key is presented, if the key is of `dialect` (native or Olo), within its rate limit.

    A key opens only its own dialect's routes: an Olo key is refused on `/v1`, a native key on `/olo/v1`.
    """
    partner = await partner_accounts(request).partner_by_api_key(_credential(credentials))
    if partner is None:
        raise ApiError(401, "unauthorized", "unknown or expired API key", headers={"WWW-Authenticate": "Bearer"})
    if partner.dialect != dialect:
        raise ApiError(401, "unauthorized", f"this API key is not a {DIALECT_NAMES[dialect]} key",
                       headers={"WWW-Authenticate": "Bearer"})
    return admitted(request, partner)


DIALECT_NAMES = {PartnerDialect.NATIVE: "native API", PartnerDialect.OLO: "Olo dispatch"}


async def partner_from_key(request: Request,
                           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                           ) -> PartnerAccount:
    """The native-dialect partner whose API key is presented, within its rate limit."""
    return await partner_by_key(request, credentials, PartnerDialect.NATIVE)


# DoorDash Drive JWTs (DD-JWT-V1): HS256, audience "doordash", at most 30 minutes from iat to exp.
DRIVE_AUDIENCE = "doordash"
DRIVE_MAX_LIFETIME_SECONDS = 1800
CLOCK_SKEW_SECONDS = 60


def _refuse(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _drive_token_parts(token: str) -> tuple[dict, bytes, bytes]:
    """The claims, the signed bytes and the signature of a DD-JWT-V1 token, refused if it is not one."""
    try:
        header_part, claims_part, signature_part = token.split(".")
        header, claims = json.loads(_b64url(header_part)), json.loads(_b64url(claims_part))
        signature = _b64url(signature_part)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise _refuse("the bearer token is not a JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _refuse("the bearer token is not a JWT")
    if header.get("alg") != "HS256" or header.get("dd-ver") != "DD-JWT-V1":
        raise _refuse("the JWT must be HS256 with dd-ver DD-JWT-V1")
    return claims, f"{header_part}.{claims_part}".encode(), signature


def _check_drive_claims(claims: dict, now: float) -> None:
    if claims.get("aud") != DRIVE_AUDIENCE:
        raise _refuse(f"the JWT audience must be {DRIVE_AUDIENCE}")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (iat, exp)):
        raise _refuse("the JWT needs numeric iat and exp")
    if exp - iat > DRIVE_MAX_LIFETIME_SECONDS:
        raise _refuse("the JWT expires more than 30 minutes after it was issued")
    if exp <= now:
        raise _refuse("the JWT expired")
    if iat > now + CLOCK_SKEW_SECONDS:
        raise _refuse("the JWT was issued in the future")


async def partner_from_drive_jwt(request: Request,
                                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                                 ) -> PartnerAccount:
    """The DoorDash-dialect partner whose signing secret (developer_id `iss`, key_id `kid`) signed the JWT."""
    claims, signed, signature = _drive_token_parts(_credential(credentials))
    developer_id, key_id = claims.get("iss"), claims.get("kid")
    if not isinstance(developer_id, str) or not isinstance(key_id, str):
        raise _refuse("the JWT needs iss (developer_id) and kid (key_id)")
    found = await partner_accounts(request).drive_signing_secret(developer_id, key_id)
    if found is None:
        raise _refuse("unknown developer_id or key_id, or the key expired")
    partner, secret = found
    expected = hmac.new(_b64url(secret), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise _refuse("the JWT signature does not verify")
    _check_drive_claims(claims, time.time())
    return admitted(request, partner)


async def partner_from_access_token(request: Request,
                                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                                    ) -> PartnerAccount:
    """The Uber-dialect partner an unexpired access token from `/oauth/v2/token` was issued to."""
    partner = await partner_accounts(request).partner_by_access_token(_credential(credentials))
    if partner is None:
        raise _refuse("unknown or expired access token")
    return admitted(request, partner)


def admitted(request: Request, partner: PartnerAccount) -> PartnerAccount:
    """The partner, once its request fits its rate limit (429 with Retry-After otherwise)."""
    request.app.state.rate_limiter.admit(partner.id)
    return partner


async def robot_from_credential(request: Request,
                                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                                ) -> Deployment:
    """The active deployment of the robot whose device credential is presented."""
    deployment = await robot_desk(request).authenticate(_credential(credentials))
    if deployment is None:
        raise ApiError(401, "unauthorized", "unknown or retired device credential",
                       headers={"WWW-Authenticate": "Bearer"})
    return deployment


CurrentPartner = Annotated[PartnerAccount, Depends(partner_from_key)]
DrivePartner = Annotated[PartnerAccount, Depends(partner_from_drive_jwt)]
UberPartner = Annotated[PartnerAccount, Depends(partner_from_access_token)]
CurrentRobot = Annotated[Deployment, Depends(robot_from_credential)]
