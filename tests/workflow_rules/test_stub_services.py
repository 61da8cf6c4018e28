"""The stub services stand in for every activity a delivery calls, under the same names and queues."""

import re
from pathlib import Path

from activities.registry import CLASSES
from tests.support.workflow_stubs import Services, activity_names

DELIVERY_PACKAGE = Path(__file__).resolve().parents[2] / "workflows" / "delivery"
CALLED = re.compile(r"\b(\w+Activities)\.(\w+)\b")


def test_every_activity_a_delivery_calls_has_a_stub_of_that_name_on_its_queue():
    called = {match.groups() for path in DELIVERY_PACKAGE.glob("*.py") for match in CALLED.finditer(path.read_text())}
    assert len(called) > 10, called
    services = Services()
    for queue, served_by in CLASSES.items():
        owner = served_by.partition(":")[2]
        stubbed = {stub.__temporal_activity_definition.name for stub in services.activities(queue)}
        wanted = {name for cls, name in called if cls == owner}
        assert wanted <= set(activity_names(queue)), (queue, wanted - set(activity_names(queue)))
        assert wanted <= stubbed, (queue, wanted - stubbed)
