"""The stub services stand in for every activity the real workers serve, under the same names and queues."""

from activities.registry import CLASSES
from tests.support.workflow_stubs import Services, activity_names


def test_every_activity_a_worker_serves_has_a_stub_of_that_name_on_its_queue():
    services = Services()
    for queue in CLASSES:
        stubs = services.activities(queue)
        assert [stub.__temporal_activity_definition.name for stub in stubs] == activity_names(queue), queue
