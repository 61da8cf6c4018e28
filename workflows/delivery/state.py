"""The state of one delivery, as one typed object that the workflow's collaborators share.

Each group of fields has one owner that changes it; the others only read it.
"""

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        LOADED_STATUSES, AttemptKind, AttemptRef, CallbackProgress, CancelRequest, Connectivity, DeliveryOrder,
        DeliveryStatus, DeliveryView, EventReceipt, OperatorAction, OperatorDecision, OperatorRecord, PlannedEtas,
        Point, RobotChoice, RobotEvent, RobotEventKey, RobotEventType, StatusCallback, TaskAssignment, TrailEntry,
        TripFinding,
    )
    from workflows.transitions import Phase


@dataclass(frozen=True)
class Decision:
    """An operator's decision waiting to be carried out."""

    kind: OperatorDecision
    action: OperatorAction


@dataclass
class DeliveryState:
    order: DeliveryOrder

    # The attempt and its robot (attempts.py), the statuses reached (progress.py).
    phase: Phase = field(default_factory=lambda: Phase(DeliveryStatus.CREATED))
    attempt: AttemptRef | None = None
    attempt_sequence: int = 0  # numbers the attempt's history in Deliveries
    choice: RobotChoice | None = None
    task: TaskAssignment | None = None
    excluded_robots: list[str] = field(default_factory=list)
    preferred_robot: str | None = None
    robot_committed: bool = False  # Dispatch signalled a commit since the delivery last asked for a robot
    sandbox_robot_asked: bool = False  # a test order's partner stepped it: its sandbox robot takes it
    cancel: CancelRequest | None = None
    reason: str | None = None
    trail: list[TrailEntry] = field(default_factory=list)
    dropoff_eta: datetime | None = None  # the dropoff ETA the partner was last given
    waiting_for: str | None = None  # "robot" or "pilot" while the delivery waits for one
    waiting_until: datetime | None = None

    # What the robot and its trip watch said (following.py).
    inbox: deque[tuple[RobotEvent, Phase]] = field(default_factory=deque)
    receipts: dict[RobotEventKey, EventReceipt] = field(default_factory=dict)  # by robot and event id
    attempt_over: bool = False
    fault_reported: bool = False
    phase_deadline: datetime | None = None
    finding: TripFinding | None = None  # a lost or stuck robot: the attempt ends
    connectivity: Connectivity = Connectivity.CONNECTED
    connectivity_detail: str = ""
    last_location: Point | None = None
    last_event: RobotEventType | None = None

    # Questions to operators and their answers (operator.py).
    attention: str | None = None
    allowed_decisions: tuple[OperatorDecision, ...] = ()
    decision: Decision | None = None
    operator_actions: list[OperatorRecord] = field(default_factory=list)
    lid_question: bool = False  # an operator is asked about a lid left open
    lid_withdrawn: bool = False  # ... and that question gave way to a park

    # Partner callbacks, numbered in one sequence (callbacks.py).
    callbacks: list[StatusCallback] = field(default_factory=list)
    callbacks_done: int = 0

    @property
    def returning(self) -> bool:
        return self.attempt is not None and self.attempt.kind is AttemptKind.RETURN

    @property
    def loaded(self) -> bool:
        return self.phase.status in LOADED_STATUSES

    @property
    def robot_id(self) -> str | None:
        return self.choice.robot_id if self.choice else None

    @property
    def reached(self) -> DeliveryStatus | None:
        """The last status recorded in Deliveries (the phase can be a moment ahead of it)."""
        return self.trail[-1].status if self.trail else None

    def view(self) -> DeliveryView:
        choice = self.choice
        return DeliveryView(
            delivery_id=self.order.delivery_id, status=self.phase.status, lid_open=self.phase.lid_open,
            at_store=self.phase.at_store, attempt=self.attempt, robot_id=self.robot_id,
            eta=PlannedEtas(pickup=choice.pickup_eta, dropoff=choice.dropoff_eta) if choice else None,
            pilot_id=self.task.pilot_id if self.task else None, reason=self.reason, waiting_for=self.waiting_for,
            connectivity=self.connectivity, dropoff_eta=self.dropoff_eta, attention=self.attention,
            operator_actions=self.operator_actions,
            callbacks=CallbackProgress(queued=len(self.callbacks), done=self.callbacks_done), trail=self.trail,
        )
