"""The chaos checks can fail: fed made-up arrivals at the chaos partner's endpoint, without the stack."""

import base64
import json

import httpx

from core.crypto import sign_webhook
from tests.chaos.checks import webhook_id_problems
from tests.chaos.receiver import ChaosReceiver

SECRET = "whsec_" + base64.b64encode(b"chaos-checks-test-secret").decode()


def callback(delivery_id: str, sequence: int, status: str) -> dict:
    return {"type": "delivery.status_changed", "timestamp": "2026-12-04T12:00:00Z",
            "data": {"delivery_id": delivery_id, "sequence": sequence, "status": status}}


async def arrive(arrivals: list[tuple[str, dict]]) -> ChaosReceiver:
    """The receiver once each (webhook-id, event) arrived in turn, signed as the platform signs it."""
    receiver = ChaosReceiver()
    receiver.secret = SECRET
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app), base_url="http://partner") as http:
        for webhook_id, event in arrivals:
            body = json.dumps(event).encode()
            headers = {"webhook-id": webhook_id, "webhook-timestamp": "1796385600",
                       "webhook-signature": sign_webhook(SECRET, webhook_id, 1796385600, body)}
            assert (await http.post("/hooks", content=body, headers=headers)).status_code == 204
    return receiver


async def test_a_webhook_id_resent_with_the_same_event_is_no_problem():
    receiver = await arrive([("o-1:1", callback("d-1", 1, "created")), ("o-1:1", callback("d-1", 1, "created")),
                             ("o-1:2", callback("d-1", 2, "robot_assigned"))])
    assert receiver.duplicates == 1
    assert webhook_id_problems(receiver.events_by_webhook_id) == []


async def test_a_webhook_id_that_brings_another_event_when_resent_fails_the_check():
    receiver = await arrive([("o-1:2", callback("d-1", 2, "robot_assigned")),
                             ("o-1:2", callback("d-1", 2, "cancelled"))])
    assert webhook_id_problems(receiver.events_by_webhook_id) == ["webhook-id o-1:2 arrived as 2 different events"]


async def test_a_webhook_id_shared_by_two_deliveries_fails_the_check():
    receiver = await arrive([("o-1:1", callback("d-1", 1, "created")), ("o-1:1", callback("d-2", 1, "created"))])
    assert webhook_id_problems(receiver.events_by_webhook_id) == ["webhook-id o-1:1 arrived as 2 different events"]


async def test_one_callback_under_two_webhook_ids_fails_the_check():
    receiver = await arrive([("o-1:1", callback("d-1", 1, "created")), ("o-9:1", callback("d-1", 1, "created"))])
    assert webhook_id_problems(receiver.events_by_webhook_id) == [
        "callback #1 of delivery d-1 arrived under webhook-ids o-1:1 and o-9:1"]
