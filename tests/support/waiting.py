"""Waiting for a delivery on the real platform: polls, its workflow's status, its end (and its recorded history)."""

import asyncio
import os
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import TERMINAL_STATUSES
from core.services import Service
from services.dispatch.models import Demand
from services.integrations import repository as integrations
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


async def ready_times(platform: Platform, partner_id, external_id: str) -> tuple[datetime | None, datetime | None]:
    """When a partner's order is ready: as Integrations stored it, and as its demand in Dispatch has it (once the
    delivery asked Dispatch for a robot)."""
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        order = await integrations.find_partner_delivery(session, uuid.UUID(str(partner_id)), external_id)

    async def demand():
        async with platform.databases.sessions(Service.DISPATCH).begin() as session:
            return await session.scalar(select(Demand).where(Demand.delivery_id == order.delivery_id))

    return order.ready_at, (await wait_for(demand)).ready_at


async def started(platform: Platform, delivery_id, timeout: float = 10) -> WorkflowHandle:
    """The delivery's workflow handle once it runs: the API answers a create before it starts the workflow."""
    handle = platform.client.get_workflow_handle(workflow_id(delivery_id))
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await handle.describe()
            return handle
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.02)


async def workflow_status(platform: Platform, delivery_id) -> dict:
    view = await (await started(platform, delivery_id)).query(DeliveryWorkflow.status)
    return view.model_dump(mode="json")


async def wait_status(platform: Platform, delivery_id, status: str, timeout: float = 30) -> dict:
    async def reached():
        view = await workflow_status(platform, delivery_id)
        return view if view["status"] == status else None

    reached.__name__ = f"status {status}"
    return await wait_for(reached, timeout)


async def wait_terminal(platform: Platform, delivery_id, timeout: float = 60) -> dict:
    handle = await started(platform, delivery_id)
    result = await asyncio.wait_for(handle.result(), timeout)
    assert result["status"] in TERMINAL_STATUSES
    if record_dir := os.environ.get("RECORD_HISTORIES"):
        # Keeps real histories for the replay test: RECORD_HISTORIES=tests/replay/histories pytest tests/lifecycle
        test_name = os.environ["PYTEST_CURRENT_TEST"].split("::")[-1].split(" ")[0]
        history = await handle.fetch_history()
        Path(record_dir, f"{test_name}.json").write_text(history.to_json())
    return result
