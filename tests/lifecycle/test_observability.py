"""Metrics and logs on the real stack: the workers' Prometheus endpoint, the API's /metrics, and JSON logs.

The `platform` fixture's workers run on their own client, made by `core.temporal.connect` with a
`metrics_port` as a worker process makes it, so its Temporal runtime serves exactly these workers' metrics:
Temporal's own and the business metrics the workflow and the activities record through its meter.
"""

import io
import json
import logging
import re
import secrets
import socket
import uuid
from collections.abc import Callable

import httpx
import pytest

from cli.errors import CommandError
from cli.up import choose_metrics_ports, describe_stack, preflight, worker_metrics_ports
from core.crypto import new_credential, new_webhook_secret
from core.logging import configure_logging, redact
from core.services import TaskQueue
from core.settings import Settings
from tests.support.cli import ROOT
from tests.support.robots import RobotDriver
from tests.support.servers import free_port
from tests.support.waiting import wait_for, wait_terminal


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


async def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of a Prometheus text page, named exactly as the endpoint names them."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = []
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, labels, value = SAMPLE.match(line).groups()
            samples.append((name, dict(LABEL.findall(labels or "")), float(value)))
    return samples


def total(samples, name: str, **labels: str) -> float:
    return sum(value for sample, found, value in samples
               if sample == name and all(found.get(k) == v for k, v in labels.items()))


def names(samples) -> set[str]:
    return {name for name, _, _ in samples}


async def deliver(market, order: dict | None = None) -> uuid.UUID:
    """One delivery from the partner's POST to `delivered`, with a new robot and pilot."""
    robot = await market.add_robot()
    await market.add_pilot()
    async with market.partner_http() as partner:
        created = await partner.post("/v1/deliveries", json=order or market.order())
        assert created.status_code == 201, created.text
        delivery_id = uuid.UUID(created.json()["id"])
        driver = RobotDriver(market, robot)
        await driver.to_pickup(delivery_id)
        await driver.load_and_go()
        await driver.hand_over()
        assert (await wait_terminal(market.platform, delivery_id))["status"] == "delivered"
        fetched = await partner.get(f"/v1/deliveries/{delivery_id}", params={"phone": "+13105550111"})
        assert fetched.status_code == 200, fetched.text
    return delivery_id


async def test_worker_endpoint_counts_a_delivery_and_serves_temporal_metrics(market):
    platform = market.platform
    before = await scrape(platform.metrics_url)

    await deliver(market)

    async def counted():
        after = await scrape(platform.metrics_url)
        grew = (total(after, "delivery_status_total", status="delivered")
                > total(before, "delivery_status_total", status="delivered"))
        return after if grew else None

    after = await wait_for(counted, timeout=10)
    assert total(after, "delivery_status_total", status="delivered", workflow_type="DeliveryWorkflow") >= 1
    # Time spent in a status is recorded when the next one is reached.
    for status in ("created", "at_pickup", "at_dropoff"):
        assert (total(after, "delivery_status_duration_seconds_count", status=status)
                > total(before, "delivery_status_duration_seconds_count", status=status)), status
    assert total(after, "delivery_status_duration_seconds_count", status="delivered") == total(
        before, "delivery_status_duration_seconds_count", status="delivered"), "a terminal status has no duration"
    # Each status of this delivery reached the partner's webhook; the planner planned its robot.
    assert (total(after, "partner_callbacks_total", outcome="delivered", task_queue="partner-callbacks")
            - total(before, "partner_callbacks_total", outcome="delivered")) >= 8
    assert (total(after, "dispatch_planning_seconds_count", outcome="planned", task_queue="dispatch")
            > total(before, "dispatch_planning_seconds_count", outcome="planned"))
    # Temporal's own metrics, from the same runtime, per task queue.
    assert total(after, "temporal_workflow_completed", workflow_type="DeliveryWorkflow") > total(
        before, "temporal_workflow_completed", workflow_type="DeliveryWorkflow")
    for queue in ("dispatch", "deliveries", "partner-callbacks"):
        assert total(after, "temporal_activity_schedule_to_start_latency_count", task_queue=queue) > 0, queue
    assert total(after, "temporal_workflow_task_schedule_to_start_latency_count",
                 task_queue=TaskQueue.DELIVERY_WORKFLOWS.value) > 0
    assert {"temporal_activity_execution_latency_count", "temporal_request_latency_count"} <= names(after)


async def test_api_metrics_count_requests_by_route_template(market):
    platform = market.platform
    url = f"{platform.api_url}/metrics"
    before = await scrape(url)

    delivery_id = await deliver(market)

    after = await scrape(url)
    created = dict(method="POST", route="/v1/deliveries", status="201")
    assert total(after, "api_requests_total", **created) == total(before, "api_requests_total", **created) + 1
    fetched = dict(method="GET", route="/v1/deliveries/{delivery_id}", status="200")
    assert total(after, "api_requests_total", **fetched) >= total(before, "api_requests_total", **fetched) + 1
    events = dict(method="POST", route="/v1/robot/events", status="200")
    assert total(after, "api_requests_total", **events) >= total(before, "api_requests_total", **events) + 8
    assert total(after, "api_request_duration_seconds_count", **created) >= 1
    # Routes are templates: no delivery ID (or anything else a caller sent) becomes a label.
    labels = {found.get("route", "") for _, found, _ in after}
    assert not any(str(delivery_id) in route for route in labels), labels
    assert "process_resident_memory_bytes" in names(after)


async def test_logs_are_json_with_delivery_context_and_no_personal_data(market):
    # Logging as worker.py and the API configure it, into a buffer, for this test only.
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(stream=stream)
    name, phone = f"Zoë Quill-{secrets.token_hex(3)}", f"+1310555{secrets.randbelow(10_000):04d}"
    address = f"{secrets.randbelow(9000) + 1000} Hidden Lane"
    order = {**market.order(), "customer": {"name": name, "phone": phone}}
    order["dropoff"] = {**order["dropoff"], "address": address, "instructions": "gate code 4411"}
    try:
        delivery_id = await deliver(market, order)
        await wait_for(_has_line(stream, lambda e: e.get("message") == "delivery delivered"), timeout=10)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    text = stream.getvalue()
    entries = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    ours = [e for e in entries if e.get("delivery_id") == str(delivery_id)]
    workflow_id = f"delivery:{delivery_id}"
    # The workflow's status lines, the activities' lines and the API's request lines all name the delivery.
    statuses = [e for e in ours if e["logger"] == "temporalio.workflow"]
    assert [e["message"] for e in statuses][:2] == ["delivery created", "delivery robot_assigned"]
    assert all(e["workflow_id"] == workflow_id and e.get("attempt_id") for e in statuses), statuses
    callbacks = [e for e in ours if e["message"] == "partner callback delivered"]
    assert len(callbacks) >= 8 and all(e["workflow_id"] == workflow_id for e in callbacks)  # no attempt: per delivery
    planned = [e for e in ours if e["logger"] == "temporalio.activity" and e.get("activity") == "plan_demand"]
    assert planned and planned[0]["attempt_id"] and planned[0]["workflow_id"] == workflow_id
    requests = [e for e in ours if e["logger"] == "api.requests"]
    assert requests and requests[0]["route"] == "/v1/deliveries/{delivery_id}" and requests[0]["status"] == 200
    assert any(e["logger"] == "api.requests" and e["route"] == "/v1/robot/events" for e in entries)
    # Nothing personal and no credential, anywhere in what was logged while it ran.
    secrets_used = [name, phone, phone.removeprefix("+"), address, "gate code", "13105550111",
                    market.api_key, *market.robots.values(), "Bearer", "authorization"]
    leaked = [s for s in secrets_used if s.lower() in text.lower()]
    assert not leaked, f"logged: {leaked}"


def _has_line(stream: io.StringIO, matches: Callable[[dict], bool]):
    async def logged():
        return any(matches(json.loads(line)) for line in stream.getvalue().splitlines())

    return logged


def test_redaction_masks_credentials_phones_and_sql_parameters():
    text = redact("Authorization: Bearer sk_abcdefghijklmnop; key sk_Zy09-_abcdefgh; device dev_abcdef123456; "
                  "secret whsec_QUJDREVGR0g=; call +1 (310) 555-0199\n[SQL: INSERT ...]\n"
                  "[parameters: ('Alex Doe', '+13105550100')]\n(Background on this error at: ...)")
    for leaked in ("abcdefghijklmnop", "Zy09", "abcdef123456", "QUJDREVGR0g", "555-0199", "Alex Doe"):
        assert leaked not in text, text
    assert "[parameters redacted]" in text and "(Background on this error" in text
    # Ids, coordinates and timestamps are left alone.
    kept = "delivery 3f2b8c1e-1d2a-4c55-9e0b-0a1b2c3d4e5f at 34.0837,-118.3614 2026-01-01T10:00:00+00:00"
    assert redact(kept) == kept


def issued_prefixes() -> set[str]:
    """Every prefix our code issues a secret under: `new_credential("xx")` anywhere, and webhook secrets."""
    calls = re.compile(r'new_credential\("(\w+)"\)')
    found = {"whsec"}
    for path in ROOT.glob("[!.]*/**/*.py"):
        if "tests" not in path.parts:
            found |= set(calls.findall(path.read_text()))
    return found


def test_redaction_masks_every_secret_we_issue_and_phones_written_any_way():
    prefixes = issued_prefixes()
    assert {"sk", "cs", "at", "dev", "whsec"} <= prefixes
    issued = [new_credential(prefix) for prefix in prefixes - {"whsec"}] + [new_webhook_secret()]
    for secret in issued:
        text = redact(f"token={secret}; again '{secret}'")
        assert secret.partition("_")[2] not in text, text
    for phone in ("(310) 555-0134", "310-555-0134", "310.555.0134", "310 555 0134", "3105550134", "13105550134",
                  "1-310-555-0134", "+1 310 555 0134"):
        assert "0134" not in redact(f"customer phone {phone}, call back"), phone
    # Statuses that share a prefix, ids, coordinates, times (ISO and epoch) and other numbers are left alone.
    kept = ("at_pickup at_dropoff 3f2b8c1e-1d2a-4c55-9e0b-0a1b2c3d4e5f 12345678-1234-5678-1234-567812345678 "
            "2026-12-04T10:00:00.123+00:00 1764842400 1764842400123 34.0837,-118.3614 order 42 weho-robot-01")
    assert redact(kept) == kept


def test_each_worker_up_starts_gets_its_own_metrics_port():
    settings = Settings(metrics_base_port=19400, api_port=18000, workers="per-queue")
    ports = worker_metrics_ports(settings)
    assert list(ports) == [q.value for q in TaskQueue]
    assert sorted(ports.values()) == list(range(19400, 19400 + len(TaskQueue)))
    urls = describe_stack(settings)["metrics_urls"]
    assert urls["worker-dispatch"] == f"http://127.0.0.1:{ports[TaskQueue.DISPATCH]}/metrics"
    assert urls["api"] == "http://127.0.0.1:18000/metrics"
    single = Settings(metrics_base_port=19400, api_port=18000)  # the default: one worker for every queue
    assert worker_metrics_ports(single) == {"all": 19400}
    assert describe_stack(single)["metrics_urls"]["worker-all"] == "http://127.0.0.1:19400/metrics"
    shared = Settings(metrics_base_port=19400, api_port=18000, workers="shared")  # workflows, and all activities
    assert worker_metrics_ports(shared) == {"delivery-workflows": 19400, "activities": 19401}
    assert describe_stack(shared)["metrics_urls"]["worker-activities"] == "http://127.0.0.1:19401/metrics"
    off = Settings(metrics_base_port=0)
    assert worker_metrics_ports(off) == {} and "metrics_urls" not in describe_stack(off)


def test_up_moves_off_a_busy_default_metrics_range_but_not_off_a_chosen_one():
    default = choose_metrics_ports(Settings())  # the default base, or the first free block above it
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", default.metrics_base_port))  # the worker's port
        holder.listen()
        moved = choose_metrics_ports(Settings())
        assert holder.getsockname()[1] not in worker_metrics_ports(moved).values()
        assert 20000 <= moved.metrics_base_port < 32768 - len(TaskQueue)
        chosen = Settings(metrics_base_port=default.metrics_base_port, api_port=free_port(),
                          temporal_address=f"127.0.0.1:{free_port()}", temporal_ui_port=free_port(),
                          postgres_port=free_port())
        assert choose_metrics_ports(chosen).metrics_base_port == default.metrics_base_port
        with pytest.raises(CommandError, match="DELIVERY_METRICS_BASE_PORT"):
            preflight(chosen)
