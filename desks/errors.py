"""How a desk turns a request down."""


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
