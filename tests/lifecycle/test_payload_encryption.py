"""A delivery's workflow payloads reach Temporal encrypted: its history, as the server stores it, holds nothing
of the order in clear, and only a holder of the payload keys reads it back."""

from temporalio.client import Client

from bench.history import payloads_of
from core.codec import ENCODING, data_converter
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_terminal
from workflows.delivery import workflow_id


async def test_a_delivery_history_holds_no_order_data_in_clear(market):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    order = market.order()
    async with market.partner_http() as partner:
        delivery_id = (await partner.post("/v1/deliveries", json=order)).json()["id"]
        driver = RobotDriver(market, robot)
        await driver.to_pickup(delivery_id)
        await driver.load_and_go()
        await driver.hand_over()
        await wait_terminal(platform, delivery_id)

    # The history exactly as the server keeps it: a client without our keys sees only sealed payloads.
    keyless = await Client.connect(platform.client.service_client.config.target_host,
                                   namespace=platform.client.namespace)
    history = await keyless.get_workflow_handle(workflow_id(delivery_id)).fetch_history()
    stored = [payload for event in history.events for payload in payloads_of(event)]
    assert len(stored) > 10
    assert all(payload.metadata["encoding"] == ENCODING for payload in stored)
    assert not any(order["external_id"].encode() in payload.data for payload in stored)

    # With the keys, the same history reads back: the order's own id is in the delivery's input.
    decoded = await data_converter(platform.settings).payload_codec.decode(stored)
    assert any(order["external_id"].encode() in payload.data for payload in decoded)
