"""Structured logs: one JSON object per line, carrying a delivery's ids when known and never personal data.

    configure_logging()                       # a process's entry point (worker.py, the API under uvicorn)
    log.info("callback sent", extra={"delivery_id": ..., "attempt_id": ...})

Every line has `ts`, `level`, `logger` and `message`, then the delivery context (`delivery_id`, `workflow_id`,
`attempt_id`), then the record's other `extra` fields. Temporal's loggers put their details in a nested
`temporal_activity` / `temporal_workflow` extra; those are lifted to top-level fields, and a workflow ID
`delivery:<id>` also gives the `delivery_id`. `ActivityLogContext` sets the context for everything logged
while an activity runs, from the IDs its input carries. Log IDs, statuses and causes only: a last-line
redaction masks bearer tokens, every secret we issue (API keys, client secrets, access tokens, device credentials,
webhook secrets), phone numbers and SQL parameters that slip through.
"""

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

CONTEXT_FIELDS = ("delivery_id", "workflow_id", "attempt_id")
_context: ContextVar[dict[str, str]] = ContextVar("delivery_log_context", default={})
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}  # uvicorn's ANSI-coloured copy of the message
# Temporal's nested details -> our field names; other keys (namespace, ids of no use to us) are dropped.
_TEMPORAL_FIELDS = {
    "temporal_activity": {"workflow_id": "workflow_id", "workflow_run_id": "run_id", "activity_type": "activity",
                          "attempt": "activity_attempt", "task_queue": "task_queue"},
    "temporal_workflow": {"workflow_id": "workflow_id", "run_id": "run_id", "workflow_type": "workflow_type",
                          "task_queue": "task_queue"},
}
# The prefixes of every secret we issue: API keys (sk), Uber client secrets (cs) and access tokens (at), device
# credentials (dev), webhook secrets (whsec). What follows one is a token, unless it is one of our snake_case
# words (`at_pickup`): a token mixes cases and digits.
_SECRET = re.compile(r"\b(sk|cs|at|dev|whsec)_(?![a-z_]+(?![\w+/=-]))[\w+/=-]{6,}")
# North American numbers written without `+`: (310) 555-0134, 310-555-0134, 1.310.555.0134, 3105550134. Not a
# piece of a longer number, id or decimal: an area code and an exchange never start with 0 or 1.
_NANP_PHONE = re.compile(r"(?<![\w+.-])(?:1[-. ]?)?(?:(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[-. ])[2-9]\d{2}[-. ]\d{4}"
                         r"|[2-9]\d{2}[2-9]\d{6})(?![\w-]|\.\d)")
_REDACTIONS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;'\"]+"), r"\1 [redacted]"),
    (_SECRET, r"\1_[redacted]"),
    (re.compile(r"\[parameters: .*?\](?=\n|$)", re.S), "[parameters redacted]"),
    (re.compile(r"\+\d[\d ()-]{6,}\d"), "[phone redacted]"),
    (_NANP_PHONE, "[phone redacted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the delivery context, then other extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update(_context.get())
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if key in _TEMPORAL_FIELDS and isinstance(value, dict):
                for source, name in _TEMPORAL_FIELDS[key].items():
                    if value.get(source) is not None:
                        entry.setdefault(name, value[source])
            elif value is not None:
                entry[key] = value if isinstance(value, (int, float, bool)) else redact(str(value))
        workflow_id = entry.get("workflow_id")
        if "delivery_id" not in entry and isinstance(workflow_id, str) and workflow_id.startswith("delivery:"):
            entry["delivery_id"] = workflow_id.removeprefix("delivery:")
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        ordered = {k: entry[k] for k in ("ts", "level", "logger", "message", *CONTEXT_FIELDS) if k in entry}
        return json.dumps({**ordered, **entry}, default=str)


def configure_logging(level: int = logging.INFO, stream=None) -> None:
    """Make the root logger (and uvicorn's) write JSON lines to `stream` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The API logs each request itself (api.requests: route template, status, duration, never the query string);
    # uvicorn's own access line would repeat it, with the raw path.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    # httpx logs every request's full URL (a partner's webhook URL may carry a token): warnings only.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # The JSON line carries Temporal's details as fields; do not repeat them inside the message.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False


def delivery_context(value: Any) -> dict[str, str]:
    """The delivery and attempt IDs an activity's input carries (directly or in its `attempt`)."""
    found: dict[str, str] = {}
    for source in (value, getattr(value, "attempt", None)):
        for name in ("delivery_id", "attempt_id"):
            field = getattr(source, name, None)
            if field is not None and name not in found:
                found[name] = str(field)
    return found


class ActivityLogContext(Interceptor):
    """Everything logged while an activity runs carries its delivery_id, workflow_id and attempt_id."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        fields = delivery_context(input.args[0]) if input.args else {}
        if info.workflow_id:
            fields["workflow_id"] = info.workflow_id
            if info.workflow_id.startswith("delivery:"):
                fields.setdefault("delivery_id", info.workflow_id.removeprefix("delivery:"))
        token = _context.set({**_context.get(), **fields})
        try:
            return await self.next.execute_activity(input)
        finally:
            _context.reset(token)
