"""Periodic planning rounds: one long-running workflow re-plans every market with waiting demand.

Rounds also run whenever demand or the fleet changes (`plan_demand`, `release_robot`); these periodic ones
commit a robot that became free by itself, and move proposals as busy robots run early or late. Deliveries
do not depend on them: a delivery's own `plan_demand` calls run rounds too.
"""

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DispatchActivities
    from core.contracts import RoundSchedule
    from core.services import TaskQueue

WORKFLOW_ID = "dispatch-planning-rounds"
ROUND_TIMEOUT = timedelta(seconds=30)
ROUND_RETRY = RetryPolicy(maximum_attempts=3)


@workflow.defn
class PlanningRoundsWorkflow:
    """Every `interval_seconds`: find the markets with demand to plan, and run a round in each."""

    @workflow.run
    async def run(self, schedule: RoundSchedule) -> None:
        for _ in range(schedule.rounds_per_run):
            try:
                markets = await workflow.execute_activity_method(
                    DispatchActivities.markets_to_plan, task_queue=TaskQueue.DISPATCH.value,
                    start_to_close_timeout=ROUND_TIMEOUT, retry_policy=ROUND_RETRY,
                )
                await asyncio.gather(*(
                    workflow.execute_activity_method(
                        DispatchActivities.replan_market, market, task_queue=TaskQueue.DISPATCH.value,
                        start_to_close_timeout=ROUND_TIMEOUT, retry_policy=ROUND_RETRY, summary=f"round in {market}",
                    ) for market in markets
                ), return_exceptions=True)
            except ActivityError:
                workflow.logger.warning("planning rounds skipped a tick: markets could not be listed")
            await workflow.sleep(schedule.interval_seconds)
        # A fresh history now and then keeps the workflow cheap to replay.
        workflow.continue_as_new(schedule)


async def start_planning_rounds(client: Client, interval_seconds: float) -> None:
    """Start the periodic rounds on the namespace, unless they already run."""
    await client.start_workflow(
        PlanningRoundsWorkflow.run, RoundSchedule(interval_seconds=interval_seconds), id=WORKFLOW_ID,
        task_queue=TaskQueue.DELIVERY_WORKFLOWS.value, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
