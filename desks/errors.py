"""How a desk turns a request down."""

import logging

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

log = logging.getLogger(__name__)


class Refusal(Exception):
    """A request a desk refuses: an HTTP status, a machine code, a message and, when one field is at fault, its
    name in the caller's own words.

    The status and code are the contract partners and robots program against, so the desk decides both; how the
    refusal is shown (native, DoorDash or Uber error bodies, their status codes) is the API's business, which
    renders every `Refusal` in one exception handler (`api/errors.py`). Keeping this type here, not the API's
    `ApiError`, lets the desks stay free of the HTTP layer they serve.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.retry_after = retry_after  # seconds, for a refusal the caller should simply retry (503)


def unavailable(message: str, retry_after: int) -> Refusal:
    """503 `temporarily_unavailable`: Temporal could not take the request just now; the caller retries."""
    return Refusal(503, "temporarily_unavailable", message, retry_after=retry_after)


def workflow_refusal(exc: WorkflowUpdateFailedError, expected: str, fixed: str) -> str:
    """What the caller is told when a delivery's workflow refuses an update.

    A refusal of the `expected` kind (an ApplicationError of that type, worded for callers) is passed on as
    the workflow says it; anything else is an internal failure, whose text may name hosts, queries or
    secrets: it is logged, and the caller gets `fixed`.
    """
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type == expected:
        return cause.message
    log.warning("a workflow update failed unexpectedly", exc_info=exc)
    return fixed
