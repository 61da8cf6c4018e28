"""Deterministic orchestration: one module per lifecycle."""

from workflows.callback_replay import CallbackReplayWorkflow
from workflows.delivery import DeliveryWorkflow
from workflows.pii_purge import PiiPurgeWorkflow
from workflows.quote import QuoteWorkflow

WORKFLOWS = [DeliveryWorkflow, QuoteWorkflow, PiiPurgeWorkflow, CallbackReplayWorkflow]
