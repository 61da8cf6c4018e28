"""A burst of orders larger than the fleet, on the real stack: no accepted order is cancelled while a robot is
planned for it.

The orders are the planner benchmark's `burst` evening (`bench/planner_scenarios.py`) drawn in the test's own
market: its pickups, dropoffs and robots, every order placed at once, each ready its scenario preparation time
later, minutes played as fractions of a second. Nothing drives the robots, so a committed robot stays busy and
every other order can hold at most a proposal for a busy robot. Once every order's robot search has run out, the
orders a robot is planned for (committed or proposed) are still open, and every cancelled order was cancelled
for want of a robot and never had one.
"""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bench.planner_scenarios import evening
from core.contracts import TERMINAL_STATUSES
from core.services import Service
from services.dispatch import repository as dispatch
from services.dispatch.models import Demand, Plan
from services.dispatch.planner import PlanningRules
from tests.support.platform import rows
from tests.support.waiting import wait_terminal, workflow_status
from workflows.delivery import workflow_id

# The burst evening of 8 orders: 10 orders (8, and a quarter more in the burst) and the 2 robots it needs.
ORDERS, SEED = 8, 1
SECONDS_PER_MINUTE = 0.2  # preparation times of 5-25 minutes are played as 1-5 seconds
SEARCH_SECONDS = 3


async def test_a_burst_larger_than_the_fleet_cancels_no_order_a_robot_is_planned_for(market, lifecycle_policy):
    platform, area = market.platform, market.market
    rules = PlanningRules(area.walking_speed_mps, platform.settings.battery_reserve,
                          (area.depot.latitude, area.depot.longitude))
    scenario = evening("burst", 1.0, True, ORDERS, SEED, rules, area)
    robots = []
    for (latitude, longitude), battery in zip(scenario.fleet.positions, scenario.fleet.battery):
        robot = await market.add_robot(north_m=(latitude - area.depot.latitude) * 111_000, battery=float(battery))
        async with platform.databases.sessions(Service.DISPATCH).begin() as session:  # where the scenario has it
            await dispatch.register_robot(session, robot, area.name, float(latitude), float(longitude),
                                          float(battery))
        await market.add_pilot()
        robots.append(robot)
    lifecycle_policy(robot_search_seconds=SEARCH_SECONDS)

    now = datetime.now(UTC)
    preparation = (scenario.ready - scenario.placed) / 60 * SECONDS_PER_MINUTE
    demands = scenario.demands
    bodies = [{**market.order(f"burst-{area.name}-{k}"),
               "pickup": {"latitude": float(pickup[0]), "longitude": float(pickup[1])},
               "dropoff": {"latitude": float(dropoff[0]), "longitude": float(dropoff[1]), "address": "1 Test Way"},
               "ready_at": (now + timedelta(seconds=float(seconds))).isoformat()}
              for k, (pickup, dropoff, seconds) in enumerate(zip(demands.pickups, demands.dropoffs, preparation))]
    async with market.partner_http() as partner:
        answers = await asyncio.gather(*(partner.post("/v1/deliveries", json=body) for body in bodies))
    refused = [a.json() for a in answers if a.status_code != 201]
    assert all(a["code"] == "no_capacity" for a in refused), refused
    accepted = [a.json() for a in answers if a.status_code == 201]
    try:
        assert len(accepted) > len(robots), (len(accepted), refused)
        # Each order's search runs out `SEARCH_SECONDS` after it is ready; a round later it has been acted on.
        deadlines = {a["id"]: max(datetime.fromisoformat(a["ready_at"]), datetime.fromisoformat(a["created_at"]))
                     + timedelta(seconds=SEARCH_SECONDS) for a in accepted}
        settled = max(deadlines.values()) + timedelta(seconds=platform.settings.planning_round_seconds + 1)
        await asyncio.sleep(max((settled - datetime.now(UTC)).total_seconds(), 0))

        seen = {}
        for order in accepted:  # the status first: a cancelled order's plans were closed before it ended
            view = await workflow_status(platform, order["id"])
            plans = await rows(platform, Service.DISPATCH, select(Plan).join(Demand, Demand.id == Plan.demand_id)
                               .where(Demand.delivery_id == order["id"]))
            seen[order["id"]] = view, {plan.status for plan in plans}
        observed_at = datetime.now(UTC)
        cancelled = {d for d, (view, _) in seen.items() if view["status"] == "cancelled"}
        committed = {d for d, (_, plans) in seen.items() if "committed" in plans}
        planned = {d for d, (_, plans) in seen.items() if plans & {"committed", "proposed"}}
        report = {d: (view["status"], view["reason"], sorted(plans)) for d, (view, plans) in seen.items()}

        assert not planned & cancelled, report
        async with market.partner_http() as partner:
            for delivery_id in planned:
                answer = await partner.get(f"/v1/deliveries/{delivery_id}")
                assert answer.json()["status"] != "cancelled", (delivery_id, answer.json())
        for delivery_id in cancelled:
            view, plans = seen[delivery_id]
            assert view["reason"] == "no_robot_available", report
            assert not plans & {"committed", "released"}, report  # never had a robot committed
            # and Dispatch's last answer before the cancellation said no robot was planned for it
            assert await last_search(platform, delivery_id) == {"planned": False}, (delivery_id, report)
        # A burst: more orders than robots, some waiting on a busy robot past their deadline, others left out.
        assert len(committed) <= len(robots), report
        waiting_on_busy = planned - committed
        assert waiting_on_busy, f"no order held only a proposal past its robot search: {report}"
        assert all(deadlines[d] < observed_at for d in waiting_on_busy), report
        assert cancelled, f"no order's robot search ran out: {report}"
    finally:
        await cancel_open(market, [a["id"] for a in accepted])


async def last_search(platform, delivery_id: str) -> dict | None:
    """Whether a robot was planned, in the last `NoRobotAvailable` Dispatch answered the delivery's search with."""
    history = await platform.client.get_workflow_handle(workflow_id(delivery_id)).fetch_history()
    asked = {e.event_id for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
             and e.activity_task_scheduled_event_attributes.activity_type.name == "plan_demand"}
    failed = [e.activity_task_failed_event_attributes for e in history.events
              if e.HasField("activity_task_failed_event_attributes")]
    answers = [f.failure for f in failed if f.scheduled_event_id in asked]
    if not answers:
        return None
    error = await platform.client.data_converter.decode_failure(answers[-1])
    return {"planned": error.details[0]["planned"]}


async def cancel_open(market, delivery_ids: list[str]) -> None:
    """Cancel every delivery still open, as its partner would, and wait for each to end."""
    async with market.partner_http() as partner:
        for delivery_id in delivery_ids:
            if (await workflow_status(market.platform, delivery_id))["status"] not in TERMINAL_STATUSES:
                answer = await partner.post(f"/v1/deliveries/{delivery_id}/cancel",
                                            json={"reason": "customer_cancelled"})
                assert answer.status_code == 200, answer.text
    await asyncio.gather(*(wait_terminal(market.platform, delivery_id) for delivery_id in delivery_ids))
