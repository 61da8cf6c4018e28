"""The delivery workflow alone on the time-skipping test server, every activity it calls a stub.

Each test has a test server of its own (it starts in a tenth of a second): an activity cut off by its workflow's
end would keep a shared one from skipping time for every later test.
"""

import pytest

from core.contracts import LifecyclePolicy
from tests.support.servers import time_skipping_server
from tests.support.workflow_stubs import QUICK, Delivery, Services, stub_workers


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
async def start(services):
    """`await start(**timers)`: a delivery under the QUICK policy (with `timers` changed), served by the stubs."""
    started: list[Delivery] = []
    async with time_skipping_server() as env, stub_workers(env.client, services):
        async def start_one(**timers) -> Delivery:
            started.append(await Delivery.start(env, services, LifecyclePolicy(**{**QUICK.model_dump(), **timers})))
            return started[-1]

        yield start_one
        for delivery in started:
            await delivery.stop()
