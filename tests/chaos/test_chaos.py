"""Faults injected one after another into the real stack while at least 100 deliveries are in flight.

The tests run in file order on one stack (`conftest.py`): seven faults, then the drain, then the checks that
nothing was lost or duplicated anywhere. Outage lengths are part of each fault's definition; everything else
waits on conditions with generous deadlines.
"""

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter

import httpx
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode

from api.errors import RETRY_AFTER_SECONDS
from core.services import Service, TaskQueue
from services.deliveries.models import Attempt
from services.operations.models import FOTask
from tests.chaos.checks import callback_problems, history_problems, row_problems, workflow_problems
from workflows.delivery import DeliveryWorkflow, workflow_id

TEMPORAL_DOWN_SECONDS = 5
DATABASE_DOWN_SECONDS = 10
PROBE_EVERY_SECONDS = 3
PARTNER_ERRORS_SECONDS = 5
PARTNER_HANGS_SECONDS = 12  # past the sender's 10 s timeout
DUPLICATES_SECONDS = 10
CRASHED_CREATES = 5
LAST_REQUESTS_SECONDS = 3  # a killed robot's requests still in the API are answered by then
DRAIN_SECONDS = 420
MID_TRIP = {"en_route_to_pickup", "at_pickup", "picked_up", "en_route_to_dropoff", "at_dropoff"}


async def test_1_a_worker_killed_on_each_queue_is_restarted(chaos):
    for queue in TaskQueue:
        in_flight = await chaos.require_in_flight()
        old, offset = chaos.stack.worker_pid(queue), len(chaos.stack.up_output())
        os.kill(old, signal.SIGKILL)
        new = await chaos.restarted(f"worker {queue.value}", offset)
        assert new != old and chaos.stack.worker_pid(queue) == new
        chaos.fault("worker killed (kill -9)", in_flight, queue=queue.value, restarted_as=new)
    for queue in TaskQueue:
        await chaos.polled(queue, chaos.stack.worker_pid(queue))
    await chaos.progress()


async def test_2_temporal_restarts_and_every_delivery_resumes(chaos):
    in_flight = await chaos.require_in_flight()
    stopped = time.monotonic()
    await chaos.stack.temporal.stop()
    await asyncio.sleep(TEMPORAL_DOWN_SECONDS)
    await chaos.stack.start_temporal()
    chaos.fault("Temporal dev server stopped and started again", in_flight,
                down_seconds=round(time.monotonic() - stopped, 1))
    for queue in TaskQueue:
        await chaos.polled(queue)
    await chaos.healthy()
    await chaos.progress()


async def probe(chaos, http: httpx.AsyncClient) -> list[tuple[str, int, str | None, str | None]]:
    """A partner's create and read and a robot's heartbeat and assignment poll: (what, status, code, Retry-After)."""
    partner = {"authorization": f"Bearer {chaos.fleet['partner']['api_key']}"}
    robot = chaos.unruly[0].headers
    some_delivery = next(iter(chaos.flow.accepted))
    body = chaos.flow.new_order()
    chaos.outage_orders.append(body)
    requests = [
        ("create", "POST", "/v1/deliveries", {"json": body, "headers": partner}),
        ("read", "GET", f"/v1/deliveries/{some_delivery}", {"headers": partner}),
        ("heartbeat", "POST", "/v1/robot/heartbeat",
         {"json": {"latitude": 34.09, "longitude": -118.36, "moving": False}, "headers": robot}),
        ("assignment", "GET", "/v1/robot/assignment", {"headers": robot}),
    ]
    answers = []
    for what, method, url, options in requests:
        response = await http.request(method, url, **options)
        code = response.json().get("code") if response.headers.get("content-type") == "application/json" else None
        answers.append((what, response.status_code, code, response.headers.get("retry-after")))
    return answers


async def test_3_a_database_outage_answers_503_and_loses_nothing(chaos):
    in_flight = await chaos.require_in_flight()
    answers = []
    stopped = time.monotonic()
    await chaos.stack.postgres.stop()
    async with httpx.AsyncClient(base_url=chaos.stack.settings.api_url, timeout=30) as http:
        while time.monotonic() - stopped < DATABASE_DOWN_SECONDS - PROBE_EVERY_SECONDS:
            answers += await probe(chaos, http)
            await asyncio.sleep(PROBE_EVERY_SECONDS)
        await asyncio.sleep(max(0.0, DATABASE_DOWN_SECONDS - (time.monotonic() - stopped)))
    await chaos.stack.start_postgres()
    chaos.fault("Postgres stopped", in_flight, down_seconds=round(time.monotonic() - stopped, 1),
                probes=len(answers))
    wrong = [answer for answer in answers
             if answer[1:] != (503, "temporarily_unavailable", str(RETRY_AFTER_SECONDS))]
    assert answers and not wrong, f"answers during the outage that are not 503 + Retry-After: {wrong}"
    await chaos.healthy()
    for body in chaos.outage_orders:  # the partner retries what it was told to retry
        delivery_id, _ = await chaos.flow.create(body)
        chaos.flow.track(delivery_id, body)
    await chaos.progress()


async def test_4_orders_accepted_while_temporal_is_down_survive_an_api_crash(chaos):
    in_flight = await chaos.require_in_flight()
    bodies = [chaos.flow.new_order() for _ in range(CRASHED_CREATES)]
    # With Temporal unreachable the API still takes orders: it stores each one, answers, and tries to start its
    # workflow in the background; killed before Temporal is back, it never does.
    await chaos.stack.temporal.stop()
    answers = await asyncio.gather(*(chaos.flow.post_once(body) for body in bodies))
    assert [answer.status_code if answer else None for answer in answers] == [201] * len(bodies), \
        [answer.text if answer else None for answer in answers]
    api, offset = chaos.stack.api_pid(), len(chaos.stack.up_output())
    os.kill(api, signal.SIGKILL)
    await chaos.stack.start_temporal()
    delivery_ids = [answer.json()["id"] for answer in answers]
    for delivery_id in delivery_ids:  # stored and answered, but no workflow was ever started
        try:
            await chaos.stack.client.get_workflow_handle(workflow_id(delivery_id)).describe()
            raise AssertionError(f"delivery {delivery_id} has a workflow although Temporal was down")
        except RPCError as exc:
            assert exc.status == RPCStatusCode.NOT_FOUND, exc
    for body, delivery_id in zip(bodies, delivery_ids):
        chaos.flow.track(delivery_id, body)
    await chaos.restarted("api", offset)
    await chaos.healthy()
    # Nobody sends them again: the stranded-orders schedule starts them within its minute, and the final checks
    # (test 8 on) find each delivered with exactly one workflow run.
    chaos.fault("API killed after accepting orders while Temporal was down", in_flight, orders=len(bodies))
    await chaos.progress()


async def test_5_a_partner_endpoint_outage_delays_callbacks_but_loses_none(chaos):
    in_flight = await chaos.require_in_flight()
    receiver = chaos.receiver
    receiver.mode = "error"
    await asyncio.sleep(PARTNER_ERRORS_SECONDS)
    receiver.mode = "hang"
    await asyncio.sleep(PARTNER_HANGS_SECONDS)
    receiver.mode = "ok"
    chaos.fault("partner endpoint answered 500, then timed out", in_flight, answered_500=receiver.answered_500,
                hung=receiver.hung)
    assert receiver.answered_500 > 0 and receiver.hung > 0
    await chaos.progress()


async def serving(chaos, statuses: set[str]) -> dict[str, str]:
    """The vanishing robots whose delivery is in one of `statuses`, as the robot API tells them: robot -> delivery."""
    found = {}
    async with httpx.AsyncClient(base_url=chaos.stack.settings.api_url, timeout=30) as http:
        for robot in chaos.vanishing:
            credential = {"authorization": f"Bearer {robot['credential']}"}
            response = await http.get("/v1/robot/assignment", headers=credential)
            if response.status_code == 200 and response.json()["status"] in statuses:
                found[robot["robot_id"]] = response.json()["delivery_id"]
    return found


async def left_open(chaos, serving_now: dict[str, str]) -> dict[str, str]:
    """Of robot -> delivery, the deliveries still waiting on that robot, as their workflows say once the robot's
    last requests have been answered (the databases the robot API reads are a moment behind)."""
    await asyncio.sleep(LAST_REQUESTS_SECONDS)
    found = {}
    for robot_id, delivery_id in serving_now.items():
        view = await chaos.stack.client.get_workflow_handle(workflow_id(delivery_id)).query(DeliveryWorkflow.status)
        if view.robot_id == robot_id and view.status in MID_TRIP | {"robot_assigned"}:
            found[robot_id] = delivery_id
    return found


async def test_6_a_robot_that_disappears_mid_trip_is_replaced(chaos):
    in_flight = await chaos.require_in_flight()
    for _ in range(3):
        await chaos.until(lambda: serving(chaos, MID_TRIP), "a vanishing robot mid-trip", timeout=240, interval=0.2)
        await asyncio.to_thread(chaos.stack.simulators["vanishing"].stop, signal.SIGKILL)
        # Its last report may have ended the trip just before it went: count only the trips it left open.
        chaos.vanished = await left_open(chaos, await serving(chaos, MID_TRIP | {"robot_assigned"}))
        if chaos.vanished:
            break
        chaos.stack.start_simulator("vanishing", chaos.vanishing)
    assert chaos.vanished, "no vanishing robot was ever caught mid-trip"
    chaos.fault("robot stopped reporting mid-trip", in_flight, robots=sorted(chaos.vanished))


async def test_7_duplicate_and_reordered_events_and_requests(chaos):
    in_flight = await chaos.require_in_flight()
    flow = chaos.flow
    flow.duplicates, flow.cancel_share = True, 0.3
    for robot in chaos.unruly:
        robot.unruly = True
    await asyncio.sleep(DUPLICATES_SECONDS)
    await chaos.until(lambda: flow.duplicate_creates >= 5 and flow.cancelled >= 3,
                      "five duplicated creates and three cancelled deliveries", timeout=300)
    flow.duplicates = False  # the robots go on misbehaving until every delivery has ended
    chaos.fault("duplicate creates and cancels, duplicated and reordered robot events", in_flight,
                duplicate_creates=flow.duplicate_creates, cancelled=flow.cancelled)


async def test_8_every_accepted_delivery_reaches_the_right_end(chaos):
    seconds = await chaos.flow.drain(DRAIN_SECONDS)
    flow, terminal = chaos.flow, chaos.receiver.terminal
    lost = [d for d in flow.accepted if d not in terminal]
    chaos.figures.update(drain_seconds=round(seconds, 1), deliveries_lost=len(lost))
    assert not lost, f"{len(lost)} deliveries never reached a terminal status: {lost[:10]}"
    wrong = {d: (terminal[d][0], sorted(t.expected), t.cancels) for d, t in flow.accepted.items()
             if terminal[d][0] not in t.expected}
    chaos.figures["final_statuses"] = dict(sorted(Counter(status for status, _ in terminal.values()).items()))
    assert not wrong, f"deliveries that ended wrongly (status, expected, cancel answers): {wrong}"
    assert flow.problems == [], flow.problems
    chaos.figures["cancelled_by_partners"] = flow.cancelled

    # The last callback can arrive while the workflow still closes the attempt's rows: wait for it to finish.
    async def all_closed():
        running = chaos.stack.client.list_workflows("WorkflowType = 'DeliveryWorkflow' AND ExecutionStatus = 'Running'")
        return [execution async for execution in running] == []

    await chaos.until(all_closed, "every delivery workflow closed", timeout=120)


async def test_9_unruly_robots_were_refused_or_answered_as_before(chaos):
    for robot in chaos.unruly:
        robot.unruly = False
    tally = chaos.robot_tally
    assert tally["premature refused"] > 0 and tally["duplicate answered as the original"] > 0, tally
    assert chaos.robot_problems == []


async def test_10_the_vanished_robots_deliveries_went_on_with_another_robot(chaos):
    assert chaos.vanished
    for robot_id, delivery_id in chaos.vanished.items():
        async with chaos.databases.sessions(Service.DELIVERIES).begin() as session:
            attempts = list(await session.scalars(
                select(Attempt).where(Attempt.delivery_id == uuid.UUID(delivery_id)).order_by(Attempt.number)))
        lost = [a for a in attempts if a.robot_id == robot_id]
        assert lost and lost[0].status == "failed" and "lost" in lost[0].end_reason, attempts
        assert attempts[-1].robot_id != robot_id and attempts[-1].status == "succeeded"
        async with chaos.databases.sessions(Service.OPERATIONS).begin() as session:
            field_tasks = list(await session.scalars(select(FOTask).where(FOTask.robot_id == robot_id)))
        assert any(task.delivery_id == uuid.UUID(delivery_id) for task in field_tasks)


async def test_11_no_duplicate_or_orphan_rows_in_any_database(chaos):
    accepted = {uuid.UUID(d) for d in chaos.flow.accepted}
    problems = await row_problems(chaos.databases, uuid.UUID(chaos.fleet["partner"]["id"]), accepted)
    chaos.figures["row_problems"] = {kind: len(found) for kind, found in problems.items()}
    chaos.figures["duplicate_rows"] = len(problems["duplicates"])
    assert problems == {kind: [] for kind in problems}, {k: v[:10] for k, v in problems.items()}


async def test_12_one_workflow_per_delivery_and_no_history_gap_or_duplicate(chaos):
    accepted = {uuid.UUID(d) for d in chaos.flow.accepted}
    client = chaos.stack.client
    problems, runs = await workflow_problems(client, accepted)
    chaos.figures["duplicate_workflows"] = sum(n - 1 for n in runs.values())
    assert problems == [], problems[:10]
    history, events, results = await history_problems(client, sorted(runs))
    chaos.figures.update(histories_checked=len(runs), history_events_checked=events)
    assert history == [], history[:10]
    chaos.results = results


async def test_13_the_partner_got_every_callback_once_in_order(chaos):
    results = chaos.results
    statuses = {d: [step["status"] for step in results[workflow_id(d)]["trail"]] for d in chaos.flow.accepted}
    queued = {d: results[workflow_id(d)]["callbacks"]["queued"] for d in chaos.flow.accepted}
    problems = callback_problems(chaos.receiver, set(chaos.flow.accepted), queued, statuses)
    chaos.figures["callbacks_checked"] = sum(queued.values())
    chaos.figures["eta_updates"] = sum(queued.values()) - sum(len(s) for s in statuses.values())
    chaos.figures["duplicate_callback_events"] = sum(1 for p in problems if "webhook-id" in p)
    assert problems == [], problems[:10]
    assert chaos.receiver.bad_signatures == 0


async def test_14_the_api_never_answered_500(chaos):
    log = chaos.stack.logs / "api.log"
    errors = [line for line in log.read_text().splitlines()
              if '"logger": "api.requests"' in line and json.loads(line).get("status", 0) >= 500
              and json.loads(line)["status"] != 503]
    chaos.figures["api_5xx_other_than_503"] = len(errors)
    assert errors == [], errors[:5]
