"""The shape of one real delivery, read from its Temporal history: activities per task queue and updates."""

import time
from collections import Counter
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.converter import PayloadCodec

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


def payloads_of(message) -> list[Payload]:
    """Every Payload inside a protobuf message (a history event, say), but for search attributes: those the
    server indexes, so they are never encrypted."""
    found = []
    for field, value in message.ListFields():
        if field.message_type is None or field.name == "search_attributes":
            continue
        if field.message_type.GetOptions().map_entry:
            values = value.values()
        else:
            values = value if isinstance(value, Sequence) or hasattr(value, "append") else [value]
        for item in values:
            if isinstance(item, Payload):
                found.append(item)
            elif hasattr(item, "ListFields"):
                found.extend(payloads_of(item))
    return found


async def codec_cost(client: Client, workflow_id: str, codec: PayloadCodec, repeats: int = 50) -> dict:
    """What the payload codec costs one delivery: its history's payloads (as stored: encrypted) decrypted and
    encrypted again, `repeats` times, in CPU milliseconds per pass (each payload sealed once by its writer and
    opened once by its reader)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    stored = [payload for event in history.events for payload in payloads_of(event)]
    started = time.process_time()
    for _ in range(repeats):
        await codec.encode(await codec.decode(stored))
    return {"payloads": len(stored), "bytes": sum(len(p.data) for p in stored),
            "cpu_ms_per_delivery": round(1000 * (time.process_time() - started) / repeats, 3)}
