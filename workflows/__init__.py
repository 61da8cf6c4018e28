"""Deterministic orchestration: one module per lifecycle."""

from workflows.delivery import DeliveryWorkflow

WORKFLOWS = [DeliveryWorkflow]
