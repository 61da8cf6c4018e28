"""Every row of `workflows/transitions.py`, checked against the lifecycle as written down here, on the workflow.

The expected moves come from the two paths below, not from the table: a wrong row fails its test, and a row
missing from (or added to) the table fails the first one.
"""

import pytest

from core.contracts import RobotEventType
from tests.support.workflow_stubs import AT_DROPOFF, Refused
from workflows.transitions import _DELIVERY_MOVES, _RETURN_MOVES

# The robot's events in the order a delivery takes them, from `robot_assigned`: (event, status, lid open, back at
# the store) after each.
DELIVERY_PATH = [
    ("departed", "en_route_to_pickup", False, False),
    ("arrived_at_pickup", "at_pickup", False, False),
    ("lid_opened", "at_pickup", True, False),
    ("lid_closed", "picked_up", False, False),
    ("departed", "en_route_to_dropoff", False, False),
    ("arrived_at_dropoff", "at_dropoff", False, False),
    ("lid_opened", "at_dropoff", True, False),
    ("lid_closed", "delivered", False, False),
]
# A return, from `returning`: (event, status, lid open, back at the store). Every step reads as returning until the
# lid closes at the store, and the lid may open only once the robot has said it is back.
RETURN_PATH = [
    ("departed", "returning", False, False),
    ("arrived_at_store", "returning", False, True),
    ("lid_opened", "returning", True, True),
    ("lid_closed", "returned", False, False),
]
PATHS = {"delivery": ("robot_assigned", DELIVERY_PATH), "return": ("returning", RETURN_PATH)}
TABLES = {"delivery": _DELIVERY_MOVES, "return": _RETURN_MOVES}
Place = tuple[str, bool, bool]  # status, lid open, back at the store


def moves(path: str) -> list[tuple[tuple[Place, str], Place]]:
    """The path as (place, event) -> place moves, in order."""
    status, steps = PATHS[path]
    here, found = (status, False, False), []
    for event, *after in steps:
        found.append(((here, event), tuple(after)))
        here = tuple(after)
    return found


def place(phase) -> Place:
    return phase.status.value, phase.lid_open, phase.at_store


ROWS = [(path, (place(phase), event.value)) for path, table in TABLES.items() for phase, event in table]


def describe(path: str, row) -> str:
    (status, lid, at_store), event = row
    return f"{path}:{status}{'+lid' if lid else ''}{'+store' if at_store else ''}:{event}"


def test_the_table_holds_exactly_the_moves_of_the_lifecycle():
    for path, table in TABLES.items():
        rows = {(place(phase), event.value): place(after) for (phase, event), after in table.items()}
        assert rows == dict(moves(path)), path


@pytest.mark.parametrize("path,row", ROWS, ids=[describe(path, row) for path, row in ROWS])
async def test_each_row_moves_the_delivery_as_the_lifecycle_says(start, path, row):
    lifecycle = moves(path)
    position = [move for move, _ in lifecycle].index(row)
    (status, lid, at_store), event = row
    delivery = await start()
    if path == "return":
        await delivery.play(*AT_DROPOFF)
        await delivery.cancel()  # after loading: the order goes back
        await delivery.reached("returning")
    await delivery.play(*(move[1] for move, _ in lifecycle[:position]))
    fitting = sorted(e for (here, e), _ in lifecycle if here == (status, lid, at_store))
    for other in sorted(set(RobotEventType) - {RobotEventType.FAULT} - set(fitting)):
        with pytest.raises(Refused) as refused:
            await delivery.robot(other)
        assert refused.value.message == (f"{other} does not fit status {status}" + (" with the lid open" if lid else "")
                                         + (" back at the store" if at_store else "")
                                         + f"; expected {', '.join(fitting)}")
    receipt = await delivery.robot(event)
    expected = dict(lifecycle)[row]
    assert (receipt.status, receipt.lid_open, receipt.at_store) == expected
    view = await delivery.reached(expected[0])
    assert (view.status, view.lid_open, view.at_store) == expected
