"""The lifecycle tests' partner endpoint (`tests/support/partners.py`) takes a callback only when it is signed with
the secret of the partner whose path it came to: another partner's signature is refused, and fails that partner's
test."""

import base64
import json
from types import SimpleNamespace

import httpx

from core.crypto import sign_webhook
from tests.support.partners import Receiver

OURS, THEIRS = ("whsec_" + base64.b64encode(name.encode() * 4).decode() for name in ("ours", "theirs"))
CALLBACK = json.dumps({"type": "delivery.status_changed", "data": {
    "delivery_id": "d-1", "external_delivery_id": "order-1", "sequence": 1, "status": "created"}}).encode()


async def send(receiver: Receiver, path: str, secret: str) -> int:
    headers = {"webhook-id": "o-1:1", "webhook-timestamp": "1796385600",
               "webhook-signature": sign_webhook(secret, "o-1:1", 1796385600, CALLBACK)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app()), base_url="http://partner") as http:
        return (await http.post(f"/hooks/{path}", content=CALLBACK, headers=headers)).status_code


def market(name: str) -> SimpleNamespace:
    """What the receiver knows of a test's market: its name."""
    return SimpleNamespace(market=SimpleNamespace(name=name))


def two_partners() -> Receiver:
    receiver = Receiver(secrets={"ours": OURS, "theirs": THEIRS})
    receiver.path_of = {"market-ours": "ours", "market-theirs": "theirs"}
    return receiver


async def test_a_callback_signed_with_its_own_partners_secret_is_taken():
    receiver = two_partners()
    assert await send(receiver, "ours", OURS) == 204
    assert [c["webhook_id"] for c in receiver.received] == ["o-1:1"] and receiver.refused == {}


async def test_a_callback_signed_with_another_partners_secret_is_refused_and_counted_against_its_partner():
    receiver = two_partners()
    assert await send(receiver, "ours", THEIRS) == 400
    assert receiver.received == [] and receiver.bad_signatures == 1
    assert receiver.refused == {"ours": ["o-1:1"]}
    assert receiver.refused_for(market("market-ours")) == ["o-1:1"]
    assert receiver.refused_for(market("market-theirs")) == []


async def test_a_callback_to_a_path_no_partner_was_given_is_refused():
    receiver = two_partners()
    assert await send(receiver, "nobody", OURS) == 400
    assert receiver.received == []
