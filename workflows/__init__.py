"""Deterministic orchestration: one module per lifecycle."""

from workflows.callback_replay import CallbackReplayWorkflow
from workflows.delivery import DeliveryWorkflow
from workflows.field_task import FieldTaskWorkflow
from workflows.pii_purge import PiiPurgeWorkflow
from workflows.planning_rounds import PlanningRoundsWorkflow
from workflows.quote import QuoteWorkflow

WORKFLOWS = [DeliveryWorkflow, QuoteWorkflow, FieldTaskWorkflow, PlanningRoundsWorkflow, PiiPurgeWorkflow,
             CallbackReplayWorkflow]
