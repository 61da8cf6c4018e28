"""The shape of one real delivery, read from its Temporal history: activities per task queue and updates."""

from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.bare import UPDATE, BareScript, bare_queue
from core.services import TaskQueue

# The real workflow sends partner callbacks from their own coroutine: they never hold up the lifecycle.
BACKGROUND_QUEUES = (TaskQueue.PARTNER_CALLBACKS.value,)


async def delivery_shape(client: Client, workflow_id: str) -> dict:
    """Count a closed workflow's ActivityTaskScheduled events per task queue and its accepted updates."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    per_queue: Counter[str] = Counter()
    activity_types: Counter[str] = Counter()
    steps: list[str] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            per_queue[scheduled.task_queue.name] += 1
            activity_types[f"{scheduled.task_queue.name}/{scheduled.activity_type.name}"] += 1
            steps.append(scheduled.task_queue.name)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            steps.append(UPDATE)
    return {
        "workflow_id": workflow_id,
        "events": len(history.events),
        "activities": sum(per_queue.values()),
        "activities_per_queue": dict(sorted(per_queue.items())),
        "activity_types": dict(sorted(activity_types.items())),
        "updates": steps.count(UPDATE),
        "workflow_tasks": sum(1 for e in history.events
                              if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        "steps": steps,
    }


def bare_script(shape: dict) -> BareScript:
    """The baseline's script: the same steps in the same order, each queue replaced by its bare twin."""
    return BareScript(steps=[step if step == UPDATE else bare_queue(step) for step in shape["steps"]],
                      background=[bare_queue(queue) for queue in BACKGROUND_QUEUES])
