"""Which robot event moves a delivery to which status: a pure table, shared by the workflow and its tests."""

from dataclasses import dataclass

from core.contracts import DeliveryStatus as S
from core.contracts import RobotEventType as E


class EventRejected(ValueError):
    """The event does not fit the delivery's current state."""


@dataclass(frozen=True)
class Phase:
    """Where the robot is in its attempt: the delivery status plus whether the lid is open."""

    status: S
    lid_open: bool = False


# (status, lid open, event) -> (next status, lid open afterwards)
_DELIVERY_MOVES: dict[tuple[S, bool, E], tuple[S, bool]] = {
    (S.ROBOT_ASSIGNED, False, E.DEPARTED): (S.EN_ROUTE_TO_PICKUP, False),
    (S.EN_ROUTE_TO_PICKUP, False, E.ARRIVED_AT_PICKUP): (S.AT_PICKUP, False),
    (S.AT_PICKUP, False, E.LID_OPENED): (S.AT_PICKUP, True),
    (S.AT_PICKUP, True, E.LID_CLOSED): (S.PICKED_UP, False),
    (S.PICKED_UP, False, E.DEPARTED): (S.EN_ROUTE_TO_DROPOFF, False),
    (S.EN_ROUTE_TO_DROPOFF, False, E.ARRIVED_AT_DROPOFF): (S.AT_DROPOFF, False),
    (S.AT_DROPOFF, False, E.LID_OPENED): (S.AT_DROPOFF, True),
    (S.AT_DROPOFF, True, E.LID_CLOSED): (S.DELIVERED, False),
}

# A return carries the order back to the store; every step of it reads as `returning`.
_RETURN_MOVES: dict[tuple[S, bool, E], tuple[S, bool]] = {
    (S.RETURNING, False, E.DEPARTED): (S.RETURNING, False),
    (S.RETURNING, False, E.ARRIVED_AT_STORE): (S.RETURNING, False),
    (S.RETURNING, False, E.LID_OPENED): (S.RETURNING, True),
    (S.RETURNING, True, E.LID_CLOSED): (S.RETURNED, False),
}


def next_phase(phase: Phase, event: E, returning: bool) -> Phase:
    """The phase after `event`, or EventRejected naming what was expected instead."""
    if event is E.FAULT:
        return phase
    moves = _RETURN_MOVES if returning else _DELIVERY_MOVES
    move = moves.get((phase.status, phase.lid_open, event))
    if move is None:
        expected = sorted(e.value for (status, lid, e) in moves if status == phase.status and lid == phase.lid_open)
        raise EventRejected(
            f"{event.value} does not fit status {phase.status.value}"
            + (" with the lid open" if phase.lid_open else "")
            + (f"; expected {', '.join(expected)}" if expected else "")
        )
    return Phase(*move)
