"""Which robot event moves a delivery to which status: a pure table, shared by the workflow and its tests."""

from dataclasses import dataclass

from core.contracts import DeliveryStatus as S
from core.contracts import RobotEventType as E


class EventRejected(ValueError):
    """The event does not fit the delivery's current state."""


@dataclass(frozen=True)
class Phase:
    """Where the robot is in its attempt: the delivery status, whether the lid is open, and on a return whether the
    robot is back at the store."""

    status: S
    lid_open: bool = False
    at_store: bool = False


# phase, event -> the phase after it
_DELIVERY_MOVES: dict[tuple[Phase, E], Phase] = {
    (Phase(S.ROBOT_ASSIGNED), E.DEPARTED): Phase(S.EN_ROUTE_TO_PICKUP),
    (Phase(S.EN_ROUTE_TO_PICKUP), E.ARRIVED_AT_PICKUP): Phase(S.AT_PICKUP),
    (Phase(S.AT_PICKUP), E.LID_OPENED): Phase(S.AT_PICKUP, lid_open=True),
    (Phase(S.AT_PICKUP, lid_open=True), E.LID_CLOSED): Phase(S.PICKED_UP),
    (Phase(S.PICKED_UP), E.DEPARTED): Phase(S.EN_ROUTE_TO_DROPOFF),
    (Phase(S.EN_ROUTE_TO_DROPOFF), E.ARRIVED_AT_DROPOFF): Phase(S.AT_DROPOFF),
    (Phase(S.AT_DROPOFF), E.LID_OPENED): Phase(S.AT_DROPOFF, lid_open=True),
    (Phase(S.AT_DROPOFF, lid_open=True), E.LID_CLOSED): Phase(S.DELIVERED),
}

# A return carries the order back to the store; every step of it reads as `returning`, and the lid opens only once
# the robot says it is back at the store.
_RETURN_MOVES: dict[tuple[Phase, E], Phase] = {
    (Phase(S.RETURNING), E.DEPARTED): Phase(S.RETURNING),
    (Phase(S.RETURNING), E.ARRIVED_AT_STORE): Phase(S.RETURNING, at_store=True),
    (Phase(S.RETURNING, at_store=True), E.LID_OPENED): Phase(S.RETURNING, lid_open=True, at_store=True),
    (Phase(S.RETURNING, lid_open=True, at_store=True), E.LID_CLOSED): Phase(S.RETURNED),
}


def next_phase(phase: Phase, event: E, returning: bool) -> Phase:
    """The phase after `event`, or EventRejected naming what was expected instead."""
    if event is E.FAULT:
        return phase
    moves = _RETURN_MOVES if returning else _DELIVERY_MOVES
    move = moves.get((phase, event))
    if move is None:
        expected = sorted(e.value for (here, e) in moves if here == phase)
        raise EventRejected(
            f"{event.value} does not fit status {phase.status.value}"
            + (" with the lid open" if phase.lid_open else "")
            + (" back at the store" if phase.at_store else "")
            + (f"; expected {', '.join(expected)}" if expected else "")
        )
    return move
