"""The delivery lifecycle: one durable workflow per delivery, driving the services through their own queues."""

from workflows.delivery.starter import start_delivery, workflow_id
from workflows.delivery.visibility import NEEDS_OPERATOR
from workflows.delivery.workflow import SANDBOX_STEP_REFUSED, DeliveryWorkflow

__all__ = ["DeliveryWorkflow", "NEEDS_OPERATOR", "SANDBOX_STEP_REFUSED", "start_delivery", "workflow_id"]
