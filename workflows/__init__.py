"""Deterministic orchestration: one module per lifecycle."""

from workflows.delivery import DeliveryWorkflow
from workflows.planning_rounds import PlanningRoundsWorkflow

WORKFLOWS = [DeliveryWorkflow, PlanningRoundsWorkflow]
