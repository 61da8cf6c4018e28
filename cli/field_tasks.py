"""`deliveryctl fo`: open field-operations tasks by hand, list them, assign and close them.

Each task is its own workflow (`field-task:<id>`): opening it takes the robot out of the plan, and the steps
here are that workflow's `assign`, `done` and `cancel` updates, the same an operator can send from the UI.
"""

import json
import uuid
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from core.contracts import FieldTaskAction, FieldTaskRequest
from core.db import Databases
from core.services import Service
from services.operations import repository
from services.operations.models import OPEN_FO_TASK_STATUSES, FOTask, FOTaskKind, Robot
from workflows.field_task import FieldTaskWorkflow, start_field_task, workflow_id

UPDATES = {"assign": FieldTaskWorkflow.assign, "done": FieldTaskWorkflow.done, "cancel": FieldTaskWorkflow.cancel}


class FieldTaskError(Exception):
    """The step cannot be taken; the message says why."""


async def create(client: Client, databases: Databases, robot_id: str, kind: str, reason: str) -> dict[str, Any]:
    """Open a field task for the robot and wait until it is open."""
    if kind not in {k.value for k in FOTaskKind}:
        raise FieldTaskError(f"unknown kind {kind!r}: choose one of {', '.join(FOTaskKind)}")
    async with databases.sessions(Service.OPERATIONS).begin() as session:
        if await session.get(Robot, robot_id) is None:
            raise FieldTaskError(f"no robot {robot_id!r} in Operations")
        already = await repository.list_field_tasks(session, open_only=True, robot_id=robot_id, kind=kind)
    if already:
        raise FieldTaskError(f"robot {robot_id} already has an open {kind} task: {already[0].id}")
    request = FieldTaskRequest(robot_id=robot_id, kind=kind, reason=reason, fo_task_id=uuid.uuid4())
    handle = await start_field_task(client, request)
    opened = await handle.execute_update(FieldTaskWorkflow.opened)
    if opened["status"] == "duplicate":  # another opener won the race
        raise FieldTaskError(f"robot {robot_id} already has an open {kind} task: {opened['fo_task_id']}")
    return opened


async def act(client: Client, databases: Databases, fo_task_id: uuid.UUID, step: str, by: str,
              note: str | None, assignee: str | None = None) -> dict[str, Any]:
    """Send one step (assign, done, cancel) to the task's workflow; FieldTaskError if it refuses it."""
    async with databases.sessions(Service.OPERATIONS).begin() as session:
        fo_task = await session.get(FOTask, fo_task_id)
    if fo_task is None:
        raise FieldTaskError(f"no field task {fo_task_id}")
    if fo_task.status not in OPEN_FO_TASK_STATUSES:
        raise FieldTaskError(f"field task {fo_task_id} is already {fo_task.status}")
    try:
        action = FieldTaskAction(by=by, assignee=assignee, note=note)
        return await client.get_workflow_handle(workflow_id(fo_task_id)).execute_update(UPDATES[step], action)
    except WorkflowUpdateFailedError as exc:
        raise FieldTaskError(f"{step} refused: {getattr(exc.cause, 'message', exc.cause)}") from None
    except ValueError as exc:  # pydantic's ValidationError: a name or note too long
        raise FieldTaskError(f"{step} refused: {exc}") from None
    except RPCError as exc:
        raise FieldTaskError(f"{step} refused: {exc.message}") from None


async def listing(databases: Databases, open_only: bool) -> list[dict[str, Any]]:
    """Field tasks, newest first, as plain data."""
    async with databases.sessions(Service.OPERATIONS).begin() as session:
        tasks = await repository.list_field_tasks(session, open_only=open_only)
    return [task.model_dump(mode="json") for task in tasks]


def show(tasks: list[dict[str, Any]], as_json: bool) -> int:
    """Print the tasks, one line each, or as JSON."""
    if as_json:
        print(json.dumps(tasks, indent=2))
        return 0
    for task in tasks:
        who = f" → {task['assignee']}" if task["assignee"] else ""
        print(f"{task['id']}  {task['created_at'][:19]}  {task['robot_id']:<24} {task['kind']:<12} "
              f"{task['status']:<9}{who}  {task['reason']}")
    print(f"{len(tasks)} field tasks")
    return 0


def describe(task: dict[str, Any]) -> str:
    """One line about a task after a step."""
    line = f"field task {task['fo_task_id']} {task['status']}: {task['kind']} for robot {task['robot_id']}"
    if task["status"] == "open":
        return line + "; the robot is out of the plan until the task is closed"
    if task["status"] == "assigned":
        return line + f", assigned to {task['assignee']}"
    if task["robot_back_in_service"]:
        return line + "; the robot is back in the plan"
    return line + "; the robot stays out of the plan: another field task of it is open"
