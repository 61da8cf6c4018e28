"""What strangers can reach without credentials: throttled by client address, answered from short-lived caches,
and never told why something inside failed."""

import asyncio

import httpx
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.limits import RateLimiter
from core.services import Service


async def test_health_names_what_is_down_never_why_and_probes_once_per_round(market, monkeypatch):
    platform = market.platform
    databases, probes = platform.app.state.databases, []
    real_check = databases.check

    async def check(service):
        probes.append(service)
        if service is Service.INTEGRATIONS:
            raise RuntimeError("password=hunter2 host=db-internal:5432")
        await real_check(service)

    monkeypatch.setattr(databases, "check", check)
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=30) as http:
        await asyncio.sleep(3.5)  # the round before this test has aged out
        first, second = await http.get("/healthz"), await http.get("/healthz")
    assert first.status_code == second.status_code == 503
    assert first.json()["checks"][f"database:{Service.INTEGRATIONS.value}"] == {"ok": False}
    assert "hunter2" not in first.text and "RuntimeError" not in first.text
    assert len(probes) == len(Service)  # the second answer came from the first round


async def test_tracking_answers_repeats_from_cache_and_strangers_are_throttled_by_address(market, monkeypatch):
    platform = market.platform
    await market.add_robot()
    async with market.partner_http() as partner:
        created = (await partner.post("/v1/deliveries", json=market.order())).json()
    views, queried = platform.app.state.order_views, []
    real_view_of = views.view_of

    async def view_of(order):
        queried.append(order)
        return await real_view_of(order)

    monkeypatch.setattr(views, "view_of", view_of)
    async with httpx.AsyncClient(timeout=30) as public:
        for _ in range(3):
            assert (await public.get(created["tracking_url"])).status_code == 200
        assert len(queried) == 1

        state, original = platform.app.state, platform.app.state.rate_limiter
        try:
            for path in (f"/track/{'y' * 32}", "/healthz"):
                state.rate_limiter = RateLimiter(rate=0.5, burst=2)
                answers = [await public.get(f"{platform.api_url}{path}") for _ in range(3)]
                assert answers[-1].status_code == 429, (path, [a.status_code for a in answers])
                assert int(answers[-1].headers["retry-after"]) >= 1
            state.rate_limiter = RateLimiter(rate=0.5, burst=2)
            form = {"client_id": "cli_nobody", "client_secret": "cs_wrong", "grant_type": "client_credentials"}
            answers = [await public.post(f"{platform.api_url}/oauth/v2/token", data=form) for _ in range(3)]
            assert [a.status_code for a in answers] == [401, 401, 429]
        finally:
            state.rate_limiter = original


class _FailingUpdates:
    """A Temporal client whose every workflow update fails unexpectedly, with internal detail in the message."""

    def get_workflow_handle(self, workflow_id: str):
        return self

    async def start_workflow(self, *args, **kwargs):  # a cancel of a created order makes sure it has started
        return self

    async def execute_update(self, *args, **kwargs):
        cause = ApplicationError("connection to 10.0.0.5:5432 refused; password=hunter2", type="OperationalError")
        raise WorkflowUpdateFailedError(cause)


async def test_an_unexpected_workflow_failure_reaches_the_caller_as_a_fixed_message(market, monkeypatch):
    await market.add_robot()
    async with market.partner_http() as partner:
        delivery_id = (await partner.post("/v1/deliveries", json=market.order())).json()["id"]
        monkeypatch.setattr(market.platform.app.state.partner_desk, "temporal", _FailingUpdates())
        refused = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
    assert refused.status_code == 409 and refused.json()["code"] == "noncancelable_delivery"
    assert "10.0.0.5" not in refused.text and "hunter2" not in refused.text
