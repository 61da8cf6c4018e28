"""Periodic planning rounds: one long-running workflow re-plans every market with waiting demand.

Rounds also run whenever demand or the fleet changes (`plan_demand`, `release_robot`); these periodic ones
commit a robot that became free by itself, and move proposals as busy robots run early or late. Deliveries
do not depend on them: a delivery's own `plan_demand` calls run rounds too.

The ticks run inside one Dispatch activity (`run_planning_rounds`) for an hour at a time, so a tick costs the
Temporal server nothing: a workflow that ran an activity and a timer per tick cost the server about ten writes
every five seconds, busy or idle. The activity heartbeats; if its worker dies, another starts it within
`heartbeat_timeout`.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DispatchActivities
    from core.contracts import RoundSchedule
    from core.services import TaskQueue

WORKFLOW_ID = "dispatch-planning-rounds"
# Beyond its run, the time a run's last tick may take.
RUN_MARGIN = timedelta(minutes=5)
# Listing the markets failed (the database is down): tried again with backoff, for as long as it takes.
RUN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1))


@workflow.defn
class PlanningRoundsWorkflow:
    """Every `interval_seconds`: find the markets with demand to plan, and run a round in each."""

    @workflow.run
    async def run(self, schedule: RoundSchedule) -> None:
        await workflow.execute_activity_method(
            DispatchActivities.run_planning_rounds, schedule, task_queue=TaskQueue.DISPATCH.value,
            start_to_close_timeout=timedelta(seconds=schedule.run_seconds) + RUN_MARGIN,
            heartbeat_timeout=heartbeat_timeout(schedule), retry_policy=RUN_RETRY,
            summary=f"rounds every {schedule.interval_seconds:g}s",
        )
        # A fresh history every run keeps the workflow cheap to replay.
        workflow.continue_as_new(schedule)


def heartbeat_timeout(schedule: RoundSchedule) -> timedelta:
    """Two ticks and a minute: the activity heartbeats every tick, and its SDK sends one a minute at most."""
    return timedelta(seconds=2 * schedule.interval_seconds + 60)


async def start_planning_rounds(client: Client, interval_seconds: float) -> None:
    """Start the periodic rounds on the namespace, unless they already run."""
    await client.start_workflow(
        PlanningRoundsWorkflow.run, RoundSchedule(interval_seconds=interval_seconds), id=WORKFLOW_ID,
        task_queue=TaskQueue.DELIVERY_WORKFLOWS.value, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
