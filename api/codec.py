"""The payload codec server: the Temporal Web UI (and `temporal` CLI) send it the encrypted payloads of a
delivery's history and get them back readable, or send it an operator's input to encrypt.

It speaks Temporal's remote codec protocol: `POST /decode` and `POST /encode` with a JSON `Payloads` body
(`{"payloads": [{"metadata": {...}, "data": "..."}]}`, bytes in base64), answered in the same shape. It is its
own process (`deliveryctl codec-server`), never a route of the partner API.

Who may read: in production, only an operator holding a bearer token from the operators' OIDC provider (the
Temporal UI passes the signed-in operator's access token when `TEMPORAL_CODEC_PASS_ACCESS_TOKEN` is true); the
token's signature (RS256, from the provider's JWKS), issuer, audience and expiry are checked, and each answer is
logged with the operator's subject, never with the payloads. The dev stack serves it on loopback without tokens
unless a JWKS URL is set.
"""

import base64
import ipaddress
import json
import logging
import time
from contextlib import asynccontextmanager

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from core.codec import PayloadCipher, PayloadCipherError, payload_cipher
from core.logging import configure_logging
from core.settings import Settings, SettingsError, load_settings

log = logging.getLogger("delivery.codec")
JWKS_SECONDS = 300  # how long fetched signing keys are trusted before they are fetched again
CLOCK_SKEW_SECONDS = 60


class Unauthorized(Exception):
    """A request without a valid operator token; the message says what was wrong, never the token."""


class OperatorTokens:
    """Checks operators' OIDC access tokens (RS256 JWTs) against the provider's published keys."""

    def __init__(self, jwks_url: str, issuer: str | None, audience: str | None, http: httpx.AsyncClient):
        self.jwks_url, self.issuer, self.audience, self.http = jwks_url, issuer, audience, http
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._fetched_at = float("-inf")

    async def operator(self, authorization: str | None) -> str:
        """The operator a bearer token names (`email`, else `sub`), once the token proves to be valid."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("an operator's bearer token is required")
        try:
            header_part, claims_part, signature_part = token.split(".")
            header, claims = _json_part(header_part), _json_part(claims_part)
            signature = _unbase64url(signature_part)
        except ValueError as exc:
            raise Unauthorized("the token is not a JWT") from exc
        if header.get("alg") != "RS256":
            raise Unauthorized("the token must be signed with RS256")
        key = await self._key(str(header.get("kid", "")))
        try:
            key.verify(signature, f"{header_part}.{claims_part}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise Unauthorized("the token's signature does not verify") from exc
        self._check_claims(claims)
        operator = claims.get("email") or claims.get("sub")
        if not operator:
            raise Unauthorized("the token names no operator (sub)")
        return str(operator)

    def _check_claims(self, claims: dict) -> None:
        now = time.time()
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now - CLOCK_SKEW_SECONDS:
            raise Unauthorized("the token has expired")
        if isinstance(claims.get("nbf"), int | float) and claims["nbf"] > now + CLOCK_SKEW_SECONDS:
            raise Unauthorized("the token is not valid yet")
        if self.issuer and claims.get("iss") != self.issuer:
            raise Unauthorized("the token is from another issuer")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if self.audience and self.audience not in audiences:
            raise Unauthorized("the token is for another audience")

    async def _key(self, kid: str) -> rsa.RSAPublicKey:
        """The provider's key `kid`, fetched again when stale or unknown (the provider rotated its keys)."""
        if kid not in self._keys or time.monotonic() - self._fetched_at > JWKS_SECONDS:
            await self._fetch()
        if kid not in self._keys:
            raise Unauthorized("the token is signed with a key the provider does not publish")
        return self._keys[kid]

    async def _fetch(self) -> None:
        try:
            response = await self.http.get(self.jwks_url)
            response.raise_for_status()
            published = response.json()["keys"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.error("cannot fetch the operators' signing keys from %s: %s", self.jwks_url, type(exc).__name__)
            raise Unauthorized("the operators' signing keys are unavailable") from exc
        self._keys = {
            str(jwk.get("kid", "")): rsa.RSAPublicNumbers(_integer(jwk["e"]), _integer(jwk["n"])).public_key()
            for jwk in published if jwk.get("kty") == "RSA" and "n" in jwk and "e" in jwk
        }
        self._fetched_at = time.monotonic()


def _unbase64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


def _json_part(part: str) -> dict:
    value = json.loads(_unbase64url(part))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _integer(part: str) -> int:
    return int.from_bytes(_unbase64url(part), "big")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def refusal(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def create_codec_app(settings: Settings | None = None, cipher: PayloadCipher | None = None) -> FastAPI:
    """The codec server for `settings` (read from the environment when None)."""
    settings = settings or load_settings()
    configure_logging()
    if not settings.codec_jwks_url and settings.profile == "production":
        raise SettingsError("DELIVERY_CODEC_JWKS_URL is required with DELIVERY_PROFILE=production: "
                            "only authenticated operators may read payloads")
    if not settings.codec_jwks_url and not _loopback(settings.codec_host):
        raise SettingsError(f"DELIVERY_CODEC_JWKS_URL is required to serve the codec on {settings.codec_host}: "
                            "without operator tokens it listens on loopback only")
    cipher = cipher or payload_cipher(settings)
    http = httpx.AsyncClient(timeout=5)
    tokens = (OperatorTokens(settings.codec_jwks_url, settings.codec_issuer, settings.codec_audience, http)
              if settings.codec_jwks_url else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await http.aclose()

    app = FastAPI(title="Delivery payload codec", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(CORSMiddleware, allow_origins=[settings.codec_ui_origin or settings.temporal_ui_url],
                       allow_credentials=True, allow_methods=["POST"],
                       allow_headers=["Authorization", "Content-Type", "X-Namespace"])

    async def convert(request: Request, action: str) -> JSONResponse:
        namespace = request.headers.get("x-namespace", settings.temporal_namespace)
        if namespace != settings.temporal_namespace:
            return refusal(403, "wrong_namespace", f"this codec serves namespace {settings.temporal_namespace}")
        operator = "unauthenticated (dev)"
        if tokens is not None:
            try:
                operator = await tokens.operator(request.headers.get("authorization"))
            except Unauthorized as exc:
                return refusal(401, "unauthorized", str(exc))
        payloads = Payloads()
        try:
            json_format.Parse(await request.body(), payloads)
        except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
            return refusal(400, "invalid_payloads", f"the body is not a JSON Payloads message: {exc}")
        try:
            converted = await (cipher.decode if action == "decode" else cipher.encode)(payloads.payloads)
        except PayloadCipherError as exc:
            return refusal(422, "payload_unreadable", str(exc))
        log.info("codec %s of %d payloads for %s", action, len(converted), operator)
        return JSONResponse(json_format.MessageToDict(Payloads(payloads=converted)))

    @app.post("/decode")
    async def decode(request: Request) -> JSONResponse:
        return await convert(request, "decode")

    @app.post("/encode")
    async def encode(request: Request) -> JSONResponse:
        return await convert(request, "encode")

    return app
