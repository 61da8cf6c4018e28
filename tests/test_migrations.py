"""The seven Alembic environments against a real Postgres: round trips, drift, isolation, invariants."""

import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from core.migrations import (
    create_databases,
    current_revisions,
    downgrade_all,
    head_revisions,
    upgrade_all,
)
from core.services import Service
from core.settings import Settings
from services.deliveries import models as deliveries
from services.integrations import models as integrations
from services.operations import models as operations
from services.state import models as state

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def metadata_of(service: Service) -> MetaData:
    return importlib.import_module(f"services.{service.value}.models").metadata


@pytest.fixture(scope="module")
async def migrated(pg_settings: Settings) -> Settings:
    """Seven databases of this module's own, at head, so migrating down never touches other tests."""
    urls = {
        f"{service.value}_database_url": urlsplit(pg_settings.database_dsn(service))
        ._replace(path=f"/migrations_test_{service.value}")
        .geturl()
        for service in Service
    }
    settings = pg_settings.model_copy(update=urls)
    assert sorted(await create_databases(settings)) == sorted(f"migrations_test_{s}" for s in Service)
    assert await create_databases(settings) == []
    upgrade_all(settings)
    return settings


async def tables_in(settings: Settings, service: Service) -> set[str]:
    connection = await asyncpg.connect(settings.database_dsn(service))
    try:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    return {row["table_name"] for row in rows}


@asynccontextmanager
async def session_on(settings: Settings, service: Service) -> AsyncIterator[AsyncSession]:
    """A session whose work is never committed."""
    engine = create_async_engine(settings.database_url(service), poolclass=NullPool)
    try:
        async with AsyncSession(engine) as session:
            yield session
    finally:
        await engine.dispose()


async def test_every_database_goes_down_to_base_and_back_up_to_head(migrated: Settings):
    expected = {service: set(metadata_of(service).tables) | {"alembic_version"} for service in Service}
    assert current_revisions(migrated) == head_revisions()
    for service in Service:
        assert await tables_in(migrated, service) == expected[service]

    downgrade_all(migrated)
    assert current_revisions(migrated) == {service.value: None for service in Service}
    for service in Service:
        assert await tables_in(migrated, service) == {"alembic_version"}

    upgrade_all(migrated)
    assert current_revisions(migrated) == head_revisions()
    for service in Service:
        assert await tables_in(migrated, service) == expected[service]


@pytest.mark.parametrize("service", list(Service))
async def test_models_and_migrations_agree(migrated: Settings, service: Service):
    def differences(connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata_of(service))

    engine = create_async_engine(migrated.database_url(service), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_each_service_tables_live_only_in_its_own_database(migrated: Settings):
    present = {service: await tables_in(migrated, service) for service in Service}
    for owner in Service:
        owned = set(metadata_of(owner).tables)
        assert owned <= present[owner]
        for other in Service:
            if other is not owner:
                # Same-named tables (robot, trip) belong to both; the rest only to the owner.
                assert not (owned - set(metadata_of(other).tables)) & present[other], (owner, other)


async def test_each_service_role_reaches_only_its_own_database(settings: Settings):
    """Each service connects as its own role; another service's database refuses it."""
    for service in Service:
        own = urlsplit(settings.database_dsn(service))
        assert own.username == service.value
        for other in Service:
            dsn = own._replace(path=f"/{other.value}").geturl()
            if other is service:
                await (await asyncpg.connect(dsn)).close()
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await asyncpg.connect(dsn)


async def test_a_database_made_before_its_service_had_a_role_is_handed_over(settings: Settings):
    """A data directory from before the services' roles: the superuser's database and tables become the role's."""
    name = f"dispatch_{uuid.uuid4().hex[:8]}"
    admin = urlsplit(settings.postgres_admin_dsn)
    for dsn, statement in ((admin.geturl(), f'CREATE DATABASE "{name}"'),
                           (admin._replace(path=f"/{name}").geturl(), "CREATE TABLE earlier (id integer)")):
        connection = await asyncpg.connect(dsn)
        await connection.execute(statement)
        await connection.close()
    url = urlsplit(settings.database_dsn(Service.DISPATCH))._replace(path=f"/{name}").geturl()
    assert await create_databases(settings.model_copy(update={"dispatch_database_url": url})) == []
    dispatch = await asyncpg.connect(url)
    try:
        await dispatch.execute("ALTER TABLE earlier ADD COLUMN later integer; INSERT INTO earlier VALUES (1, 2)")
    finally:
        await dispatch.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(urlsplit(settings.database_dsn(Service.STATE))._replace(path=f"/{name}").geturl())


async def _attempt(session: AsyncSession) -> dict[str, Any]:
    customer = deliveries.Customer(partner_id=uuid.uuid4(), pii_id=uuid.uuid4())
    session.add(customer)
    await session.flush()
    delivery = deliveries.Delivery(
        partner_id=uuid.uuid4(), external_delivery_id="order-1", customer_id=customer.id,
        market="weho", pickup_latitude=34.09, pickup_longitude=-118.36,
        dropoff_latitude=34.08, dropoff_longitude=-118.37,
    )  # fmt: skip
    session.add(delivery)
    await session.flush()
    attempt = deliveries.Attempt(delivery_id=delivery.id, number=1)
    session.add(attempt)
    await session.flush()
    return {"attempt_id": attempt.id, "status": deliveries.AttemptStatus.ACTIVE}


async def _task(session: AsyncSession, robot_id: str = "weho-robot-01") -> operations.Task:
    if await session.get(operations.Robot, robot_id) is None:
        session.add(operations.Robot(id=robot_id, market="weho"))
        await session.flush()
    task = operations.Task(delivery_id=uuid.uuid4(), attempt_id=uuid.uuid4(), robot_id=robot_id)
    session.add(task)
    await session.flush()
    return task


async def _task_history(session: AsyncSession) -> dict[str, Any]:
    return {"task_id": (await _task(session)).id, "status": operations.TaskStatus.ASSIGNED}


async def _trip(session: AsyncSession) -> dict[str, Any]:
    task = await _task(session)
    trip = operations.Trip(
        task_id=task.id, delivery_id=task.delivery_id, attempt_id=task.attempt_id,
        robot_id=task.robot_id, leg=operations.TripLeg.TO_PICKUP,
    )  # fmt: skip
    session.add(trip)
    await session.flush()
    return {"trip_id": trip.id, "status": operations.TripStatus.IN_PROGRESS}


async def _pilot_shift(session: AsyncSession) -> dict[str, Any]:
    pilot = operations.Pilot(name="Ada")
    session.add(pilot)
    await session.flush()
    shift = operations.PilotShift(pilot_id=pilot.id)
    session.add(shift)
    await session.flush()
    return {"shift_id": shift.id, "state": operations.PilotShiftStatus.ON_BREAK}


async def _fo_task(session: AsyncSession) -> dict[str, Any]:
    fo_task = operations.FOTask(
        robot_id="weho-robot-02", kind=operations.FOTaskKind.RESCUE, reason="stuck"
    )
    session.add(fo_task)
    await session.flush()
    return {"fo_task_id": fo_task.id, "status": operations.FOTaskStatus.ASSIGNED}


async def _lid_event(session: AsyncSession) -> dict[str, Any]:
    return {"robot_id": "weho-robot-03", "event": state.LidEvent.OPENED,
            "latitude": 34.08, "longitude": -118.37}  # fmt: skip


async def _state_event(session: AsyncSession) -> dict[str, Any]:
    return {"robot_id": "weho-robot-04", "event_id": str(uuid.uuid4()), "event_type": "heartbeat"}


async def _partner_delivery(session: AsyncSession) -> dict[str, Any]:
    partner = integrations.Partner(name="DoorDash", dialect=integrations.PartnerDialect.DOORDASH)
    session.add(partner)
    await session.flush()
    order = integrations.PartnerDelivery(
        partner_id=partner.id, external_delivery_id="dd-1", request_hash="h", status="created", market="m",
        pickup_latitude=0, pickup_longitude=0, dropoff_latitude=0, dropoff_longitude=0, tracking_token="t-1",
    )
    session.add(order)
    await session.flush()
    return {"partner_delivery_id": order.id, "status": "created", "internal_status": "created"}


Seed = Callable[[AsyncSession], Awaitable[dict[str, Any]]]
HISTORIES: list[tuple[Service, type, Seed]] = [
    (Service.DELIVERIES, deliveries.AttemptHistory, _attempt),
    (Service.OPERATIONS, operations.TaskHistory, _task_history),
    (Service.OPERATIONS, operations.TripHistory, _trip),
    (Service.OPERATIONS, operations.PilotShiftStateHistory, _pilot_shift),
    (Service.OPERATIONS, operations.FOTaskHistory, _fo_task),
    (Service.STATE, state.LidCycleEvent, _lid_event),
    (Service.STATE, state.StateHistory, _state_event),
    (Service.INTEGRATIONS, integrations.ExternalState, _partner_delivery),
]


@pytest.mark.parametrize(
    ("service", "history", "seed"), HISTORIES, ids=[h.__tablename__ for _, h, _ in HISTORIES]
)
async def test_history_rejects_a_second_append_at_the_same_sequence(
    migrated: Settings, service: Service, history: type, seed: Seed
):
    (key,) = [
        c.name
        for c in history.__table__.constraints
        if isinstance(c, UniqueConstraint) and "sequence" in c.columns
    ]
    async with session_on(migrated, service) as session:
        row = await seed(session)
        session.add(history(sequence=1, occurred_at=NOW, **row))
        await session.flush()
        if "event_id" in row:
            row["event_id"] = str(uuid.uuid4())  # a new event, so only the sequence collides
        session.add(history(sequence=1, occurred_at=NOW, **row))
        with pytest.raises(IntegrityError, match=key):
            await session.flush()


async def test_state_history_rejects_the_same_robot_event_twice(migrated: Settings):
    async with session_on(migrated, Service.STATE) as session:
        row = await _state_event(session)
        session.add(state.StateHistory(sequence=1, occurred_at=NOW, **row))
        await session.flush()
        session.add(state.StateHistory(sequence=2, occurred_at=NOW, **row))
        with pytest.raises(IntegrityError, match="uq_state_history_robot_event"):
            await session.flush()


async def test_a_robot_never_has_two_active_tasks(migrated: Settings):
    async with session_on(migrated, Service.OPERATIONS) as session:
        first = await _task(session, "weho-robot-09")
        first.status = operations.TaskStatus.IN_PROGRESS
        await session.flush()
        with pytest.raises(IntegrityError, match="uq_task_one_active_per_robot"):
            await _task(session, "weho-robot-09")

    async with session_on(migrated, Service.OPERATIONS) as session:
        first = await _task(session, "weho-robot-10")
        first.status = operations.TaskStatus.COMPLETED
        await session.flush()
        second = await _task(session, "weho-robot-10")
        assert second.status == operations.TaskStatus.CREATED
