"""The real platform in-process: a worker for every queue, the HTTP API on a port, and a partner's webhook receiver.

Each test gets its own market (a disjoint service area) with its own robots and pilots, so tests
sharing the session's servers never compete for a robot. The harness itself lives in `tests/support/`.
"""

import pytest

from core.geocoding import DEMO_ADDRESSES, OfflineGeocoder
from tests.support.interceptors import FailOnceAfterCommit
from tests.support.lifecycle import audit_test_markets
from tests.support.markets import OwnMarket, new_market
from tests.support.partners import running_hooks, running_receiver
from tests.support.platform import shared_platform


@pytest.fixture(scope="session")
async def platform(settings, temporal_env):
    """Workers on every task queue and the API, against the session's Postgres and Temporal dev server."""
    async with shared_platform(settings, temporal_env) as platform:
        yield platform


@pytest.fixture(scope="session", autouse=True)
async def every_delivery_audited(platform):
    """Once the session's lifecycle tests are done, whichever ran: every delivery they made has rows that agree
    across the seven databases."""
    yield
    report = await audit_test_markets(platform)
    assert report["problems"] == [], report["problems"]
    assert report["attempts"] >= report["deliveries"]


@pytest.fixture
def hold_activity(platform):
    """`hold_activity(type, matches)`: the matching activities wait until `.released` is set (at the latest
    when the test ends)."""
    yield platform.holds.hold
    platform.holds.release_all()


@pytest.fixture
def flaky(platform) -> FailOnceAfterCommit:
    """Switch on failure injection for one test (the platform's workers' own interceptor)."""
    platform.flaky.reset()
    yield platform.flaky
    platform.flaky.on = False


@pytest.fixture(scope="session")
async def receiver():
    async with running_receiver() as receiver:
        yield receiver


@pytest.fixture
async def market(platform, receiver) -> OwnMarket:
    """A fresh market 5 km square, far from every other test's, with a partner whose webhook is the receiver. A
    callback to that partner that its own secret did not sign fails the test."""
    made = new_market(platform)
    await receiver.serve_partner_of(made)
    yield made
    assert receiver.refused_for(made) == [], "callbacks not signed with this partner's own webhook secret"


@pytest.fixture
def geocoded(platform, market) -> dict[str, tuple[float, float]]:
    """The API's offline geocoder knows the market's street addresses for one test."""
    original = platform.app.state.partner_desk.geocoder
    platform.app.state.partner_desk.geocoder = OfflineGeocoder({**DEMO_ADDRESSES, **market.addresses})
    yield market.addresses
    platform.app.state.partner_desk.geocoder = original


@pytest.fixture(scope="session")
async def hooks():
    async with running_hooks() as hooks:
        yield hooks


@pytest.fixture
def settings_override(platform):
    """Let one test run the API with other settings (e.g. a short quote validity)."""
    original = platform.app.state.partner_desk.settings

    def use(**changes) -> None:
        platform.app.state.partner_desk.settings = original.model_copy(update=changes)

    yield use
    platform.app.state.partner_desk.settings = original


@pytest.fixture
def lifecycle_policy(platform):
    """Let one test create deliveries with other timers (the API stamps them on each new delivery)."""
    original = platform.app.state.partner_desk.settings

    def use(**changes) -> None:
        policy = original.lifecycle.model_copy(update=changes)
        platform.app.state.partner_desk.settings = original.model_copy(update={"lifecycle": policy})

    yield use
    platform.app.state.partner_desk.settings = original
