"""The activities each service offers, as workflows call them: names, argument and result types, and what each does.

Workflow code imports these, never the implementations (`activities.<service>`), so a workflow worker loads no
database or planning code. Each implementation subclasses its interface and marks every method `@activity.defn`
again under the same name; `tests/workflow_rules/test_activity_interfaces.py` holds the two together.
"""

from uuid import UUID

from temporalio import activity

from core.contracts import (
    AttemptOutcome, AttemptRef, CallbackFailure, DeliveryOrder, DemandRequest, Deployment, FieldTaskChange,
    FieldTaskRequest, NewAttempt, PlanningRounds, QuoteEstimate, QuoteOffer, QuoteRequest, RecordedRobotEvent,
    RobotChoice, RobotRelease, RobotService, RoundSchedule, StatusCallback, StatusChange, TaskAssignment, TaskClosure,
    TaskRequest, TripFinding, TripUpdate, TripWatch,
)


class IntegrationsActivities:
    """Integrations: the partner's stored order, accepted before the lifecycle starts; stranded orders; PII purge."""

    @activity.defn
    async def accept_order(self, order: DeliveryOrder) -> None:
        """Confirm the partner order exists for this delivery and mark it accepted (idempotent)."""

    @activity.defn
    async def stranded_orders(self) -> list[DeliveryOrder]:
        """Orders stored longer ago than `stranded_order_grace_seconds` (within the last day) that are still
        `created`, as their workflows start with them: each may have been stored by an API that died before it
        started the workflow."""

    @activity.defn
    async def purge_pii(self) -> int:
        """Erase the personal data of orders whose retention has passed; a retry finds nothing left to do."""


class PartnerCallbackActivities:
    """Partner status callbacks: signed, sequenced, sent once per status."""

    @activity.defn
    async def send_status_callback(self, callback: StatusCallback) -> str:
        """Record the partner-facing status in the partner's dialect, then deliver it unless it was already."""

    @activity.defn
    async def enable_webhook(self, partner_delivery_id: UUID) -> None:
        """Turn the partner's endpoint back on once an operator confirms it is fixed."""

    @activity.defn
    async def record_callback_failure(self, failure: CallbackFailure) -> None:
        """Mark a callback whose retries ran out as failed, for operators to replay."""


class DeliveriesActivities:
    """Deliveries: the delivery, its attempts and their status history; every write is keyed."""

    @activity.defn
    async def create_delivery(self, order: DeliveryOrder) -> AttemptRef:
        """Store the delivery, its customer and its first attempt; a retry returns that same attempt."""

    @activity.defn
    async def record_quote(self, offer: QuoteOffer) -> None:
        """Store a quote's offer once; a retry finds it stored."""

    @activity.defn
    async def coarsen_delivery_dropoffs(self) -> int:
        """Round to about a kilometre the dropoff of deliveries that ended (and quotes that expired) longer ago
        than the PII retention; a retry finds them done."""

    @activity.defn
    async def start_attempt(self, request: NewAttempt) -> AttemptRef:
        """Open attempt `number` of a delivery and make it the delivery's latest attempt."""

    @activity.defn
    async def record_status(self, change: StatusChange) -> None:
        """Append the status to the attempt's history and move the delivery to it, once per sequence."""

    @activity.defn
    async def end_attempt(self, outcome: AttemptOutcome) -> None:
        """End the attempt as succeeded, failed or cancelled, and append that to its history once."""


class DispatchActivities:
    """Dispatch: plan demands in rounds, quote from the same planning view, free robots."""

    @activity.defn
    async def plan_demand(self, request: DemandRequest) -> RobotChoice:
        """Plan the market with this demand in it; return the demand's committed robot.

        A retry returns the plan already committed. Asked again for a demand the rounds still plan (asked within
        `demand_hold_seconds`, the same excluded robots), it reads what they planned when a round has run since
        the demand last asked, instead of planning the market once more. `NoRobotAvailable` while the demand
        is not committed (no robot can take it, the robot it waits for is still busy, or is held until the
        order is nearly ready), with a `DemandSearch` as its detail: whether a robot is planned for the demand
        and when its order is ready. Its latency is `dispatch_planning_seconds{outcome=planned|no_robot|error}`.
        """

    @activity.defn
    async def run_planning_rounds(self, schedule: RoundSchedule) -> PlanningRounds:
        """The periodic rounds, for `schedule.run_seconds`: every `interval_seconds`, a round in each market with
        demands a round could still plan. One long activity, so a tick costs the Temporal server nothing; it
        heartbeats its running totals (`PlanningRounds`), which the Web UI shows as the pending activity's
        details. A round that fails is logged and its market planned again on the next tick; a failure to list
        the markets (the database is down) fails the activity, and Temporal retries it with backoff."""

    @activity.defn
    async def estimate_quote(self, request: QuoteRequest) -> QuoteEstimate:
        """The earliest pickup the fleet can promise for this trip, and its fee; reserves nothing.

        The same planning view as the rounds: each robot from where and when it becomes free, after the
        proposal queued behind it. Read-only, so a retry is harmless. `NoCapacity` when no robot in the
        market could do the trip.
        """

    @activity.defn
    async def release_robot(self, release: RobotRelease) -> None:
        """Close the attempt's demand and plans, free its robot unless it already serves another demand, and
        re-plan the market (the freed robot may take a waiting demand)."""

    @activity.defn
    async def coarsen_demand_dropoffs(self) -> int:
        """Round to about a kilometre the dropoff of demands closed longer ago than the PII retention; a retry
        finds them done."""

    @activity.defn
    async def set_robot_service(self, change: RobotService) -> None:
        """Take a robot out of the plan for field work, or put it back; the planner never picks a robot out of it.

        A robot still serving a demand leaves the plan once that demand releases it: until then this fails with
        `RobotStillServing`, and Temporal's retries wait for it.
        """


class OperationsActivities:
    """Operations: pilots' tasks and trip progress, field tasks."""

    @activity.defn
    async def assign_task(self, request: TaskRequest) -> TaskAssignment:
        """Give the robot a task for the attempt, its first trip and a pilot on shift; one task per attempt. A test
        order's sandbox robot is registered when first used, and needs no pilot."""

    @activity.defn
    async def record_trip_progress(self, update: TripUpdate) -> None:
        """Move the trip on `leg` (created if missing) and optionally its task; the robot's status follows."""

    @activity.defn
    async def close_task(self, closure: TaskClosure) -> None:
        """End the task with its outcome, end its open trips, and free its pilot and robot."""

    @activity.defn
    async def open_field_task(self, request: FieldTaskRequest) -> UUID:
        """Ask field operations to attend to a robot and take it out of service; the robot's open task of that
        kind if it has one already (a retry, or the same need reported twice)."""

    @activity.defn
    async def assign_field_task(self, change: FieldTaskChange) -> None:
        """Record who goes to the robot; a retry, or a task already closed, changes nothing."""

    @activity.defn
    async def close_field_task(self, change: FieldTaskChange) -> bool:
        """End the field task as done or cancelled; the robot is back in service unless another field task of it
        is still open. Whether the robot is in service now."""


class TripMonitorActivities:
    """Trip Monitor: watch an attempt's trip and report what the delivery must act on."""

    @activity.defn
    async def watch_trip(self, watch: TripWatch) -> TripFinding:
        """Wait for news for the delivery: the robot is lost or stuck, its connectivity changed, or it runs late.
        The workflow cancels it when the attempt ends.

        The trip is looked at when its robot's heartbeat is committed (a Postgres notice) and when the next
        threshold passes with no heartbeat (`repository.next_assessment_at`); nothing polls in between.
        """

    @activity.defn
    async def stop_watching(self, watch: TripWatch) -> None:
        """Close the attempt's watch."""


class StateActivities:
    """State: every robot event the delivery accepted, with GPS."""

    @activity.defn
    async def record_robot_event(self, recorded: RecordedRobotEvent) -> bool:
        """Append the event to StateHistory (and LidCycleEventHistory), once per event id."""


class DeviceActivities:
    """Device: what is deployed on a robot."""

    @activity.defn
    async def verify_deployment(self, robot_id: str) -> Deployment:
        """The robot's active deployment, or RobotNotDeployed if it was retired."""
