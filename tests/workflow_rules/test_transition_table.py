"""Every row of `workflows/transitions.py`, checked against the lifecycle as written down here, on the workflow.

The expected moves come from the two paths below, not from the table: a wrong row fails its test, and a row
missing from (or added to) the table fails the first one.
"""

import pytest

from core.contracts import RobotEventType
from tests.support.workflow_stubs import AT_DROPOFF, Refused
from workflows.transitions import _DELIVERY_MOVES, _RETURN_MOVES

# The robot's events in the order a delivery takes them, from `robot_assigned`: (event, status, lid open after).
DELIVERY_PATH = [
    ("departed", "en_route_to_pickup", False),
    ("arrived_at_pickup", "at_pickup", False),
    ("lid_opened", "at_pickup", True),
    ("lid_closed", "picked_up", False),
    ("departed", "en_route_to_dropoff", False),
    ("arrived_at_dropoff", "at_dropoff", False),
    ("lid_opened", "at_dropoff", True),
    ("lid_closed", "delivered", False),
]
# A return, from `returning`: every step of it reads as returning until the lid closes at the store.
RETURN_PATH = [
    ("departed", "returning", False),
    ("arrived_at_store", "returning", False),
    ("lid_opened", "returning", True),
    ("lid_closed", "returned", False),
]
PATHS = {"delivery": ("robot_assigned", DELIVERY_PATH), "return": ("returning", RETURN_PATH)}
TABLES = {"delivery": _DELIVERY_MOVES, "return": _RETURN_MOVES}


def moves(path: str) -> list[tuple[tuple[str, bool, str], tuple[str, bool]]]:
    """The path as (status, lid open, event) -> (status, lid open) moves, in order."""
    status, steps = PATHS[path]
    here, found = (status, False), []
    for event, *after in steps:
        found.append(((*here, event), tuple(after)))
        here = tuple(after)
    return found


ROWS = [(path, (status.value, lid, event.value)) for path, table in TABLES.items() for status, lid, event in table]


def test_the_table_holds_exactly_the_moves_of_the_lifecycle():
    for path, table in TABLES.items():
        rows = {(s.value, lid, e.value): (to.value, lid_after) for (s, lid, e), (to, lid_after) in table.items()}
        assert rows == dict(moves(path)), path


@pytest.mark.parametrize("path,row", ROWS, ids=[f"{path}:{s}{'+lid' if lid else ''}:{e}" for path, (s, lid, e) in ROWS])
async def test_each_row_moves_the_delivery_as_the_lifecycle_says(start, path, row):
    lifecycle = moves(path)
    position = [move for move, _ in lifecycle].index(row)
    status, lid, event = row
    delivery = await start()
    if path == "return":
        await delivery.play(*AT_DROPOFF)
        await delivery.cancel()  # after loading: the order goes back
        await delivery.reached("returning")
    await delivery.play(*(move[2] for move, _ in lifecycle[:position]))
    fitting = sorted(e for (s, lid_open, e), _ in lifecycle if (s, lid_open) == (status, lid))
    for other in sorted(set(RobotEventType) - {RobotEventType.FAULT} - set(fitting)):
        with pytest.raises(Refused) as refused:
            await delivery.robot(other)
        assert refused.value.message == (f"{other} does not fit status {status}" + (" with the lid open" if lid else "")
                                         + f"; expected {', '.join(fitting)}")
    receipt = await delivery.robot(event)
    expected = dict(lifecycle)[row]
    assert (receipt.status, receipt.lid_open) == expected
    view = await delivery.reached(expected[0])
    assert (view.status, view.lid_open) == expected
