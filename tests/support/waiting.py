"""Waiting for a delivery on the real platform: polls, its workflow's status, its end (and its recorded history)."""

import asyncio
import os
from pathlib import Path

from core.contracts import TERMINAL_STATUSES
from tests.support.platform import Platform
from workflows.delivery import DeliveryWorkflow, workflow_id


async def wait_for(predicate, timeout: float = 30, interval: float = 0.1):
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate.__name__}")
        await asyncio.sleep(interval)


async def workflow_status(platform: Platform, delivery_id) -> dict:
    view = await platform.client.get_workflow_handle(workflow_id(delivery_id)).query(DeliveryWorkflow.status)
    return view.model_dump(mode="json")


async def wait_status(platform: Platform, delivery_id, status: str, timeout: float = 30) -> dict:
    async def reached():
        view = await workflow_status(platform, delivery_id)
        return view if view["status"] == status else None

    reached.__name__ = f"status {status}"
    return await wait_for(reached, timeout)


async def wait_terminal(platform: Platform, delivery_id, timeout: float = 60) -> dict:
    handle = platform.client.get_workflow_handle(workflow_id(delivery_id))
    result = await asyncio.wait_for(handle.result(), timeout)
    assert result["status"] in TERMINAL_STATUSES
    if record_dir := os.environ.get("RECORD_HISTORIES"):
        # Keeps real histories for the replay test: RECORD_HISTORIES=tests/replay/histories pytest tests/lifecycle
        test_name = os.environ["PYTEST_CURRENT_TEST"].split("::")[-1].split(" ")[0]
        history = await handle.fetch_history()
        Path(record_dir, f"{test_name}.json").write_text(history.to_json())
    return result
