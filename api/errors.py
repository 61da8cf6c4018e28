"""One error shape for every 4xx/5xx: {"code", "message", "field_errors"}, unless a dialect renders its own.

A partner dialect mounted under a path prefix (DoorDash `/drive/v2`, Uber `/v1/customers`) registers a
renderer, and every error under that prefix (from a route, the request validation or the router itself)
is shown in that dialect's shape, with its status codes.
"""

from collections.abc import Callable

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from desks.errors import Refusal

# How long a client should wait before retrying while a database or Temporal cannot be reached.
RETRY_AFTER_SECONDS = 5
# Unreachable, overloaded, or timed out (the client's own deadline reports as CANCELLED, "Timeout expired").
_TRANSIENT_RPC = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED,
                  RPCStatusCode.CANCELLED, RPCStatusCode.ABORTED}
# Connection refused or reset, a server shutting down or starting up, too many connections.
_TRANSIENT_DATABASE = (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                       asyncpg.exceptions.InsufficientResourcesError)


class FieldError(BaseModel):
    field: str
    error: str


class ErrorBody(BaseModel):
    code: str
    message: str
    field_errors: list[FieldError] = []


class ApiError(Exception):
    """An error a client can act on: an HTTP status, a machine code, a message and the fields at fault."""

    def __init__(self, status: int, code: str, message: str, field_errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field_errors = field_errors or []
        self.headers = headers

    @classmethod
    def of(cls, refusal: Refusal) -> "ApiError":
        """A desk's refusal as the API shows it: the field at fault, and when to retry."""
        fields = [FieldError(field=refusal.field, error=refusal.code)] if refusal.field else []
        headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after is not None else None
        return cls(refusal.status, refusal.code, refusal.message, fields, headers)


def error_response(status: int, code: str, message: str, field_errors=(), headers=None) -> JSONResponse:
    body = ErrorBody(code=code, message=message, field_errors=list(field_errors))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def dependency_unavailable(exc: BaseException | None) -> bool:
    """True when `exc`, or an error it was raised from, says a database or Temporal cannot be reached right now."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RPCError):
            return exc.status in _TRANSIENT_RPC
        if isinstance(exc, _TRANSIENT_DATABASE) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


ErrorRenderer = Callable[[ApiError], JSONResponse]


def native_error(error: ApiError) -> JSONResponse:
    return error_response(error.status, error.code, error.message, error.field_errors, error.headers)


def install_error_handlers(app: FastAPI, dialects: dict[str, ErrorRenderer] | None = None) -> None:
    """Render every error as the native body, or as the dialect's whose path prefix the request is under."""
    dialects = dialects or {}

    def render(request: Request, error: ApiError) -> JSONResponse:
        path = request.url.path
        renderer = next((r for prefix, r in dialects.items() if path.startswith(prefix)), native_error)
        return renderer(error)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return render(request, exc)

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> JSONResponse:
        return render(request, ApiError.of(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [FieldError(field=".".join(str(p) for p in err["loc"] if p != "body"), error=err["msg"])
                  for err in exc.errors()]
        return render(request, ApiError(422, "invalid_request", "the request does not match the schema", fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
        return render(request, ApiError(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)))

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Only an outage is the client's to retry; any other failure of these kinds is a bug and stays a 500.
        if not dependency_unavailable(exc):
            raise exc
        return render(request, ApiError(503, "temporarily_unavailable",
                                        f"the platform cannot serve this right now; retry in {RETRY_AFTER_SECONDS}s",
                                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))

    for kind in (DBAPIError, OSError, asyncpg.PostgresError, RPCError):
        app.add_exception_handler(kind, _unavailable)


ERROR_RESPONSES = {
    401: {"model": ErrorBody, "description": "Missing or invalid credentials"},
    404: {"model": ErrorBody, "description": "No such resource for this caller"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; `field_errors` names the fields"},
    503: {"model": ErrorBody, "description": "A dependency is unavailable; retry after `Retry-After`"},
}
# The refusals of every dialect's sandbox step (`desks.sandbox`).
SANDBOX_REFUSALS = {409: {"model": ErrorBody, "description": "`live_delivery`: a live delivery is never stepped; "
                                                             "`delivery_finished`: it has ended; `step_refused`: "
                                                             "it cannot move just now"}}
SANDBOX_STEP = "Step a test delivery to its next status"
