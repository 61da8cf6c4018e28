"""The typed messages that cross the workflow/activity boundary: one input and one output per call.

They carry identifiers and coordinates only; customer names, phones and addresses stay encrypted in
Integrations and never enter a workflow history.
"""

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class DeliveryStatus(StrEnum):
    """Where a delivery is; the partner-facing vocabularies map from these words."""

    CREATED = "created"
    ROBOT_ASSIGNED = "robot_assigned"
    EN_ROUTE_TO_PICKUP = "en_route_to_pickup"
    AT_PICKUP = "at_pickup"
    PICKED_UP = "picked_up"
    EN_ROUTE_TO_DROPOFF = "en_route_to_dropoff"
    AT_DROPOFF = "at_dropoff"
    DELIVERED = "delivered"
    RETURNING = "returning"
    RETURNED = "returned"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED, DeliveryStatus.RETURNED})
# The order is in the robot: a cancellation (or a customer who does not come) sends it back to the store.
LOADED_STATUSES = frozenset({DeliveryStatus.PICKED_UP, DeliveryStatus.EN_ROUTE_TO_DROPOFF, DeliveryStatus.AT_DROPOFF})


class AttemptKind(StrEnum):
    """What an attempt does with the order: take it to the customer, or back to the store."""

    DELIVERY = "delivery"
    RETURN = "return"


class TripLeg(StrEnum):
    """The stretch of road a trip covers."""

    TO_PICKUP = "to_pickup"
    TO_DROPOFF = "to_dropoff"
    TO_STORE = "to_store"


class LegStatus(StrEnum):
    """How far a trip leg (or the task driving it) has got."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class TaskOutcome(StrEnum):
    """How Operations closes a robot's task."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class AttemptResult(StrEnum):
    """How Deliveries closes an attempt."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptEnd(StrEnum):
    """Why following a robot stopped: the order arrived, the robot failed, a timer ran out or it was cancelled."""

    DELIVERED = "delivered"
    RETURNED = "returned"
    FAULT = "fault"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class OperatorDecision(StrEnum):
    """What an operator may decide for a delivery; each is an update of the delivery workflow."""

    RETRY = "retry"
    REDISPATCH = "redispatch"
    CANCEL = "cancel"
    RESOLVE_DELIVERED = "resolve_delivered"
    RESOLVE_RETURNED = "resolve_returned"


class ReasonCode(StrEnum):
    """What a partner is told when an operator's decision ends an attempt or the delivery: a code set by the
    decision's kind. The operator's note never reaches a partner; it stays on the operator's record
    (`OperatorRecord`). An operator's cancel may name one of these codes instead of `operator_cancelled`."""

    OPERATOR_CANCELLED = "operator_cancelled"
    OPERATOR_REDISPATCHED = "operator_redispatched"
    OPERATOR_DELIVERED = "operator_delivered"
    OPERATOR_RETURNED = "operator_returned"
    NO_ROBOT_AVAILABLE = "no_robot_available"
    NO_PILOT_AVAILABLE = "no_pilot_available"
    ROBOT_UNAVAILABLE = "robot_unavailable"
    STORE_CLOSED = "store_closed"
    DESTINATION_UNREACHABLE = "destination_unreachable"
    PACKAGE_DAMAGE = "package_damage"
    INCOMPATIBLE_DELIVERY_MODE = "incompatible_delivery_mode"


class FindingKind(StrEnum):
    """What trip monitoring can report: `lost` and `stuck` end the attempt, the others inform it."""

    LOST = "lost"
    STUCK = "stuck"
    LATE = "late"
    DEGRADED = "degraded"
    CONNECTED = "connected"


class Connectivity(StrEnum):
    """How well the delivery hears from its robot."""

    CONNECTED = "connected"
    DEGRADED = "degraded"
    LOST = "lost"


class CallbackKind(StrEnum):
    """A partner notice: a status reached, or a revised dropoff ETA."""

    STATUS = "status"
    ETA_UPDATED = "eta_updated"


class RobotEventType(StrEnum):
    """What a robot reports about the task it is serving."""

    DEPARTED = "departed"
    ARRIVED_AT_PICKUP = "arrived_at_pickup"
    LID_OPENED = "lid_opened"
    LID_CLOSED = "lid_closed"
    ARRIVED_AT_DROPOFF = "arrived_at_dropoff"
    ARRIVED_AT_STORE = "arrived_at_store"
    FAULT = "fault"


class Point(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class LifecyclePolicy(BaseModel):
    """The timers of one delivery, fixed when it is created (from settings) so replays agree."""

    step_retry_initial_seconds: float = 1
    step_retry_max_attempts: int = 10
    robot_search_seconds: float = 600
    robot_retry_seconds: float = Field(120, description="how long a delivery waiting for a robot waits before it "
                                                        "asks Dispatch again; a commit by a planning round wakes it "
                                                        "sooner (`robot_committed`). Below `demand_hold_seconds`, "
                                                        "so the rounds keep planning its demand")
    pickup_wait_seconds: float = 600
    customer_no_show_seconds: float = 300
    lid_open_seconds: float = Field(300, description="how long the lid may stay open at the dropoff (or back "
                                                     "at the store) before an operator is asked to look")
    pilot_wait_seconds: float = 600
    pilot_retry_seconds: float = Field(10, description="how often a delivery with a robot asks Operations again "
                                                       "for a free pilot")
    no_robot_action: str = Field("cancel", pattern="^(cancel|park)$",
                                 description="after robot_search_seconds: cancel, or park for an operator")
    callback_initial_interval_seconds: float = 5
    callback_max_attempts: int = 10
    callback_max_interval_seconds: float = 3600
    connectivity_degraded_seconds: float = 30
    connectivity_lost_seconds: float = 90
    stuck_window_seconds: float = 180
    eta_drift_seconds: float = Field(120, description="how far behind the promised dropoff ETA before the "
                                                      "partner is told a new one")


class DeliveryOrder(BaseModel):
    """The workflow's input: an accepted partner order, by reference."""

    delivery_id: UUID
    partner_id: UUID
    partner_delivery_id: UUID
    pii_id: UUID
    external_delivery_id: str
    market: str
    store_id: UUID | None = None
    pickup: Point
    dropoff: Point
    quote_id: UUID | None = None
    policy: LifecyclePolicy = LifecyclePolicy()
    ready_at: datetime | None = None  # when the partner said the order is ready at the store
    # False for a test partner's order: a sandbox robot plays it, stepped by the partner; Dispatch never plans it.
    live_mode: bool = True


class AttemptRef(BaseModel):
    """One try at moving the order; a return to the store is an attempt of kind `return`."""

    delivery_id: UUID
    attempt_id: UUID
    number: int
    kind: AttemptKind = AttemptKind.DELIVERY


class NewAttempt(BaseModel):
    delivery_id: UUID
    number: int
    kind: AttemptKind
    previous_attempt_id: UUID | None = None
    previous_outcome: str | None = None


class StatusChange(BaseModel):
    """A delivery status reached by an attempt; `sequence` numbers the attempt's history."""

    delivery_id: UUID
    attempt_id: UUID
    status: DeliveryStatus
    sequence: int
    occurred_at: datetime
    robot_id: str | None = None
    reason: str | None = None


class AttemptOutcome(BaseModel):
    attempt_id: UUID
    status: AttemptResult
    reason: str
    sequence: int
    occurred_at: datetime


class DemandRequest(BaseModel):
    attempt: AttemptRef
    market: str
    pickup: Point
    dropoff: Point
    exclude_robot_ids: list[str] = []
    preferred_robot_id: str | None = None
    ready_at: datetime | None = Field(None, description="when the order is ready at the store, if the partner said")


class DemandSearch(BaseModel):
    """The detail of `NoRobotAvailable`: whether a robot is planned for the demand (a busy one, or a free one held
    until the order is nearly ready), and when the order is ready; the robot search runs only without one."""

    planned: bool = False
    ready_at: datetime | None = None


class QuoteRequest(BaseModel):
    """What a quote is asked for: where from, where to, and when the order will be ready."""

    market: str
    pickup: Point
    dropoff: Point
    ready_at: datetime | None = Field(None, description="earliest time the order can be picked up")


class QuoteEstimate(BaseModel):
    """Dispatch's answer to a quote: the robot it would send now, its ETAs and the fee."""

    robot_id: str
    pickup_eta: datetime
    dropoff_eta: datetime
    distance_meters: float
    fee_cents: int
    currency: str = "USD"
    planner: str


class QuoteOrder(BaseModel):
    """The quote workflow's input: who asks, for which order, and for how long the price holds."""

    quote_id: UUID
    partner_id: UUID
    external_delivery_id: str | None = None
    request: QuoteRequest
    valid_seconds: float = Field(300, gt=0)


class QuoteOffer(BaseModel):
    """A quote as stored in Deliveries and shown to the partner."""

    quote_id: UUID
    partner_id: UUID
    external_delivery_id: str | None = None
    market: str
    pickup: Point
    dropoff: Point
    fee_cents: int
    currency: str
    pickup_eta: datetime
    dropoff_eta: datetime
    expires_at: datetime
    ready_at: datetime | None = Field(None, description="when the order is ready at the store, as quoted")


class RobotChoice(BaseModel):
    """The planner's decision for a demand; a test order's sandbox robot has neither demand nor plan."""

    demand_id: UUID | None
    plan_id: UUID | None
    robot_id: str
    pickup_eta: datetime
    dropoff_eta: datetime


class RoundSchedule(BaseModel):
    """How often the periodic planning rounds run, and for how long one activity runs them before the workflow
    starts afresh."""

    interval_seconds: float = Field(gt=0)
    run_seconds: float = Field(3600, gt=0)


class PlanningRound(BaseModel):
    """What one Dispatch planning round did in a market."""

    market: str
    committed: int
    proposed: int
    unplanned: int


class PlanningRounds(BaseModel):
    """What the periodic rounds did so far in one run: its heartbeat details, then its result."""

    ticks: int = 0
    rounds: int = 0
    committed: int = 0
    proposed: int = 0
    failed: int = 0  # rounds that raised; their market is planned again on the next tick

    def add(self, done: PlanningRound) -> None:
        self.rounds += 1
        self.committed += done.committed
        self.proposed += done.proposed


class RobotRelease(BaseModel):
    """The end of an attempt for Dispatch: its demand closes and its robot (if it had one) is free again."""

    attempt_id: UUID
    robot_id: str | None
    demand_fulfilled: bool
    location: Point | None = None
    out_of_service: bool = False


class TaskRequest(BaseModel):
    attempt: AttemptRef
    robot_id: str
    first_leg: TripLeg
    sandbox_market: str | None = Field(None, description="a test order's market: its robot is a sandbox robot, "
                                                         "registered there when first used, and needs no pilot")


class TaskAssignment(BaseModel):
    task_id: UUID
    trip_id: UUID
    robot_id: str
    pilot_id: UUID | None = Field(description="none for a sandbox robot")


class TripUpdate(BaseModel):
    """A trip or task status reached; sequences number the trip's and task's histories."""

    task_id: UUID
    leg: TripLeg
    trip_status: LegStatus
    task_status: LegStatus | None = None
    occurred_at: datetime


class TaskClosure(BaseModel):
    task_id: UUID
    robot_id: str
    outcome: TaskOutcome
    occurred_at: datetime
    robot_out_of_service: bool = False


class FieldTaskRequest(BaseModel):
    """A need for field work on a robot; `fo_task_id` is the id the task gets if it is the robot's first of its kind."""

    robot_id: str
    kind: str
    reason: str
    delivery_id: UUID | None = None
    attempt_id: UUID | None = None
    fo_task_id: UUID | None = None


class FieldTaskAction(BaseModel):
    """A person's step on a field task: who sends whom (assign), or how it ended (done, cancel)."""

    by: str = Field(min_length=1, max_length=64, description="who records the step")
    assignee: str | None = Field(None, min_length=1, max_length=200, description="assign only: who goes")
    note: str | None = Field(None, max_length=500)


class FieldTaskChange(BaseModel):
    """A field task moving to `status` (assigned, done or cancelled) because of `action`."""

    fo_task_id: UUID
    status: str = Field(pattern="^(assigned|done|cancelled)$")
    action: FieldTaskAction


class RobotService(BaseModel):
    """Whether a robot is in the plan (idle when free) or out of it for field work (maintenance)."""

    robot_id: str
    in_service: bool


class TripWatch(BaseModel):
    """What to watch, and what the delivery already knows: only news is reported.

    Without `dropoff` (a return: no partner ETA to keep) lateness is not watched.
    """

    attempt_id: UUID
    delivery_id: UUID
    robot_id: str
    policy: LifecyclePolicy
    connectivity: Connectivity = Connectivity.CONNECTED
    loaded: bool = False
    pickup: Point | None = None
    dropoff: Point | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    promised_dropoff_eta: datetime | None = None


class TripFinding(BaseModel):
    """What trip monitoring saw: `stuck` or `lost` ends the attempt; `degraded` and `connected` change the
    robot's connectivity; `late` carries the new `dropoff_eta`."""

    attempt_id: UUID
    kind: FindingKind
    detail: str
    dropoff_eta: datetime | None = None


class RobotEventKey(BaseModel):
    """Which event: ids are unique per robot only, so the robot's id names it together with the event's."""

    model_config = ConfigDict(frozen=True)

    robot_id: str
    event_id: str


class RobotEvent(BaseModel):
    """One event reported by a robot, as accepted by its delivery workflow."""

    event_id: str = Field(min_length=1, max_length=64, description="unique per robot")
    robot_id: str
    type: RobotEventType
    location: Point | None = None
    occurred_at: datetime
    detail: str | None = None

    @property
    def key(self) -> RobotEventKey:
        return RobotEventKey(robot_id=self.robot_id, event_id=self.event_id)


class EventReceipt(BaseModel):
    """The answer to a robot event: the delivery's status (and the lid) after it."""

    delivery_id: UUID
    status: DeliveryStatus
    attempt_id: UUID | None
    lid_open: bool = False
    at_store: bool = Field(False, description="on a return: the robot said it is back at the store")


class CancelRequest(BaseModel):
    """A cancel, by the partner (its own reason code) or by an operator (`requested_by` names the operator)."""

    reason: str = Field(min_length=1, max_length=64, description="an operator's cancel tells the partner this only "
                                                                 "if it is a ReasonCode; else operator_cancelled")
    requested_by: str = "partner"
    note: str | None = Field(None, max_length=500, description="an operator's: why, kept on the operator's record "
                                                               "and never told to the partner")


class OperatorAction(BaseModel):
    """An operator's decision on a delivery, recorded with who and why."""

    operator: str = Field(min_length=1, max_length=64, description="who decided")
    note: str = Field(min_length=1, max_length=500, description="why")
    robot_id: str | None = Field(None, description="redispatch only: the robot to use")
    reason: str | None = Field(None, max_length=64, description="cancel only: the reason code")


class Deployment(BaseModel):
    robot_id: str
    market: str
    software_version: str


class CallbackFailure(BaseModel):
    partner_delivery_id: UUID
    sequence: int
    error: str


class RecordedRobotEvent(BaseModel):
    event: RobotEvent
    delivery_id: UUID | None
    attempt_id: UUID | None
    accepted: bool
    rejection_reason: str | None = None


class StatusCallback(BaseModel):
    """One partner-facing notice; `sequence` is per delivery and monotonic.

    `kind` is `status` (the delivery reached `status`) or `eta_updated` (it is running late: `dropoff_eta`).
    """

    partner_delivery_id: UUID
    delivery_id: UUID
    sequence: int
    status: DeliveryStatus
    occurred_at: datetime
    robot_id: str | None = None
    reason: str | None = None
    kind: CallbackKind = CallbackKind.STATUS
    dropoff_eta: datetime | None = None


class PlannedEtas(BaseModel):
    """When the planned robot reaches the pickup and the dropoff."""

    pickup: datetime
    dropoff: datetime


class OperatorRecord(BaseModel):
    """An operator's decision as the delivery recorded it, with the question it answered."""

    action: OperatorDecision
    operator: str
    note: str
    robot_id: str | None = None
    reason: str | None = None
    at: datetime
    attention: str | None = None


class TrailEntry(BaseModel):
    """A status the delivery reached, when, in which attempt, with which robot and why."""

    status: DeliveryStatus
    at: datetime
    attempt: int
    robot_id: str | None = None
    reason: str | None = None


class CallbackProgress(BaseModel):
    """How many partner callbacks the delivery queued, and how many are settled (sent or recorded failed)."""

    queued: int = 0
    done: int = 0


class DeliveryView(BaseModel):
    """The delivery workflow's own view of a delivery: its `status` query and its result."""

    delivery_id: UUID
    status: DeliveryStatus
    lid_open: bool = False
    at_store: bool = False
    attempt: AttemptRef | None = None
    robot_id: str | None = None
    eta: PlannedEtas | None = Field(None, description="the plan's ETAs for the current robot")
    pilot_id: UUID | None = None
    reason: str | None = None
    waiting_for: str | None = Field(None, description="robot or pilot, while the delivery waits for one")
    connectivity: Connectivity = Connectivity.CONNECTED
    dropoff_eta: datetime | None = Field(None, description="the dropoff ETA the partner was last given")
    attention: str | None = Field(None, description="why an operator is needed, while one is")
    operator_actions: list[OperatorRecord] = []
    callbacks: CallbackProgress = CallbackProgress()
    trail: list[TrailEntry] = []

    @property
    def live_dropoff_eta(self) -> datetime | None:
        """The dropoff ETA to show: a late robot's revised one, else the plan's."""
        return self.dropoff_eta or (self.eta.dropoff if self.eta else None)
