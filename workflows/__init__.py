"""Deterministic orchestration: one module per lifecycle."""

from temporalio.client import Client

from workflows.callback_replay import CallbackReplayWorkflow
from workflows.delivery import DeliveryWorkflow
from workflows.field_task import FieldTaskWorkflow
from workflows.pii_purge import SCHEDULE_ID as PII_PURGE, PiiPurgeWorkflow, ensure_pii_purge_schedule
from workflows.planning_rounds import PlanningRoundsWorkflow
from workflows.quote import QuoteWorkflow
from workflows.stranded_orders import (
    SCHEDULE_ID as STRANDED_ORDERS, StrandedOrdersWorkflow, ensure_stranded_orders_schedule,
)

WORKFLOWS = [DeliveryWorkflow, QuoteWorkflow, FieldTaskWorkflow, PlanningRoundsWorkflow, PiiPurgeWorkflow,
             CallbackReplayWorkflow, StrandedOrdersWorkflow]

# The schedules the platform runs, each made by its workflow's module.
SCHEDULES = {PII_PURGE: ensure_pii_purge_schedule, STRANDED_ORDERS: ensure_stranded_orders_schedule}


async def ensure_schedules(client: Client) -> list[str]:
    """Create the platform's schedules the namespace lacks; the ids of those created now."""
    return [schedule_id for schedule_id, ensure in SCHEDULES.items() if await ensure(client)]
