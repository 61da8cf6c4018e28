"""Every `deliveryctl` command that talks to the stack ends cleanly, run after run: exit status 0, and never the
interpreter's abort at exit (`Fatal Python error: PyGILState_Release`, 134) that the Temporal client's threads
caused when they outlived the command.

The stack is the session's Temporal dev server, seven databases of the module's own (so the audit finds nothing
amiss) holding one delivery, and a stack file naming a live process, as `deliveryctl up` leaves it. The runs are
forked from one interpreter that imported the CLI once (`tests.support.forked_cli`): each is a process of its own
that exits through the interpreter's finalization, without paying for the imports every time.
"""

import json
import os
import time
import uuid
from urllib.parse import urlsplit

import pytest

from cli.up import describe_stack, stack_file
from core.contracts import DeliveryOrder, Point
from core.crypto import vault_from_settings
from core.db import Databases
from core.migrations import create_databases, upgrade_all
from core.services import Service
from core.settings import Settings, settings_environment
from services.deliveries import repository as deliveries
from services.integrations import repository as integrations
from services.integrations.models import Partner, PartnerDelivery
from tests.support.forked_cli import run_each

RUNS = 20


@pytest.fixture(scope="module")
async def stack(settings: Settings, temporal_env, tmp_path_factory) -> Settings:
    """Settings of a running stack: the session's Temporal, seven fresh databases, a stack file of this process."""
    suffix = uuid.uuid4().hex[:8]
    own = settings.model_copy(update={
        "data_dir": tmp_path_factory.mktemp("stack"),
        "temporal_address": temporal_env.client.service_client.config.target_host,
        **{f"{service.value}_database_url":
           urlsplit(settings.database_dsn(service))._replace(path=f"/{service.value}_{suffix}").geturl()
           for service in Service},
    })
    await create_databases(own)
    upgrade_all(own)
    stack_file(own).write_text(json.dumps({**describe_stack(own), "pid": os.getpid()}))
    return own


async def one_delivery(settings: Settings) -> uuid.UUID:
    """A delivery that was ordered and created, as far as Integrations and Deliveries go."""
    databases = Databases(settings, [Service.INTEGRATIONS, Service.DELIVERIES], pool_size=1)
    try:
        async with databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner = Partner(name="Exit Kitchen")
            session.add(partner)
            order = PartnerDelivery(partner_id=partner.id, external_delivery_id="exit-1", delivery_id=uuid.uuid4(),
                                    request_hash="exit", status="created", market="west-hollywood",
                                    pickup_latitude=34.0837, pickup_longitude=-118.3614, dropoff_latitude=34.09,
                                    dropoff_longitude=-118.36, tracking_token=uuid.uuid4().hex)
            pii = await integrations.store_order(session, vault_from_settings(settings), order,
                                                 {"name": "Ada", "phone": "+13105550100", "address": "1 Main St"})
        started = DeliveryOrder(delivery_id=order.delivery_id, partner_id=partner.id, partner_delivery_id=order.id,
                                pii_id=pii.id, external_delivery_id=order.external_delivery_id, market=order.market,
                                pickup=Point(latitude=34.0837, longitude=-118.3614),
                                dropoff=Point(latitude=34.09, longitude=-118.36))
        async with databases.sessions(Service.DELIVERIES).begin() as session:
            customer_id = await deliveries.upsert_customer(session, partner.id, pii.id)
            await deliveries.insert_delivery(session, started, customer_id)
    finally:
        await databases.dispose()
    return order.delivery_id


async def test_every_stack_command_exits_cleanly_twenty_times_in_a_row(stack, tmp_path):
    delivery_id = await one_delivery(stack)
    commands = [["status"], ["ops", "stuck"], ["ops", "show", str(delivery_id)], ["ops", "queues"],
                ["pilots", "list"], ["fo", "list"], ["callbacks", "failed"], ["audit"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    env.update(settings_environment(stack))

    began = time.monotonic()
    runs = run_each(commands, RUNS, env, tmp_path)
    print(f"{len(runs)} runs in {time.monotonic() - began:.1f} s")

    failed = [f"deliveryctl {' '.join(run.args)}: exit {run.status}\n{run.stderr[-2000:]}"
              for run in runs if run.status != 0 or "Fatal Python error" in run.stderr]
    assert not failed, f"{len(failed)} of {len(runs)} runs did not end cleanly:\n" + "\n".join(failed[:5])
    shown = json.loads(next(run.stdout for run in runs if run.args[:2] == ["ops", "show"]))
    assert shown["deliveries"]["id"] == str(delivery_id)
    assert "no orphan rows" in next(run.stdout for run in runs if run.args == ["audit"])
