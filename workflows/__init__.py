"""Deterministic orchestration: one module per lifecycle."""

from workflows.delivery import DeliveryWorkflow
from workflows.field_task import FieldTaskWorkflow

WORKFLOWS = [DeliveryWorkflow, FieldTaskWorkflow]
