"""Queries of the Integrations service: partners, stores, partner orders, their PII and status trail."""

import uuid
from datetime import UTC, datetime

import json

from sqlalchemy import Boolean, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.columns import coarsened_dropoff
from core.contracts import TERMINAL_STATUSES, DeliveryStatus, StatusCallback
from core.crypto import Vault
from services.integrations.models import (
    PII, CallbackStatus, ExternalState, Partner, PartnerCredential, PartnerDelivery, QuoteRequest, Store,
)
from services.integrations.sealing import seal, unseal

# The sealed columns of a PII row, each bound to its row and column.
PII_FIELDS = ("customer_name_encrypted", "customer_phone_encrypted", "dropoff_address_encrypted",
              "dropoff_instructions_encrypted")


async def add_store(session: AsyncSession, partner_id: uuid.UUID, external_store_id: str, name: str,
                    latitude: float, longitude: float, market: str, preparation_minutes: int | None = None) -> Store:
    """Register (or update) a partner's pickup location under its own store id, with its preparation estimate in
    minutes (None: the market's)."""
    values = dict(partner_id=partner_id, external_store_id=external_store_id, name=name, latitude=latitude,
                  longitude=longitude, market=market, preparation_minutes=preparation_minutes)
    statement = insert(Store).values(id=uuid.uuid4(), created_at=datetime.now(UTC), **values)
    statement = statement.on_conflict_do_update(
        constraint="uq_store_partner_external",
        set_={k: statement.excluded[k] for k in ("name", "latitude", "longitude", "market", "preparation_minutes")},
    )
    await session.execute(statement)
    return await find_store(session, partner_id, external_store_id)


# Built once: every create asks for its store and for an order stored before under its id.
STORE_OF_PARTNER = select(Store).where(Store.partner_id == bindparam("partner_id"),
                                       Store.external_store_id == bindparam("external_id"))
ORDER_OF_PARTNER = select(PartnerDelivery).where(PartnerDelivery.partner_id == bindparam("partner_id"),
                                                 PartnerDelivery.external_delivery_id == bindparam("external_id"))


async def find_store(session: AsyncSession, partner_id: uuid.UUID, external_store_id: str) -> Store | None:
    return await session.scalar(STORE_OF_PARTNER, {"partner_id": partner_id, "external_id": external_store_id})


async def list_stores(session: AsyncSession, partner_id: uuid.UUID) -> list[Store]:
    return list(await session.scalars(select(Store).where(Store.partner_id == partner_id).order_by(Store.name)))


async def find_partner_delivery(session: AsyncSession, partner_id: uuid.UUID,
                                external_delivery_id: str) -> PartnerDelivery | None:
    return await session.scalar(ORDER_OF_PARTNER, {"partner_id": partner_id, "external_id": external_delivery_id})


async def find_order_of_delivery(session: AsyncSession, partner_id: uuid.UUID,
                                 delivery_id: uuid.UUID) -> PartnerDelivery | None:
    return await session.scalar(select(PartnerDelivery).where(
        PartnerDelivery.partner_id == partner_id, PartnerDelivery.delivery_id == delivery_id))


async def store_order(session: AsyncSession, vault: Vault, order: PartnerDelivery, customer: dict[str, str | None],
                      ) -> PII:
    """Store a partner order and its customer's data, sealed, in one statement: both rows or neither, whether the
    session commits each statement on its own (`Databases.lookups`) or in a transaction. Rows the caller added to
    the session before (the order's partner) are flushed first."""
    pii = PII(partner_delivery_id=order.id, key_id=vault.current)
    values = (customer["name"], customer["phone"], customer["address"] or "", customer.get("instructions"))
    for column, value in zip(PII_FIELDS, values):
        if value:
            seal(vault, pii, column, value)
    await session.flush()
    stored, sealed = order.model_dump(), pii.model_dump()  # a column without a value is stored NULL
    parameters = {column.name: stored.get(column.name) for column in PartnerDelivery.__table__.c}
    parameters.update({f"pii_{column.name}": sealed.get(column.name) for column in PII.__table__.c})
    await (await session.connection()).execute(STORE_ORDER, parameters)
    return pii


def _store_order_statement():
    """INSERT the order, and its PII row from the order's id, in one statement: built once, with a parameter per
    column (`pii_<column>` for the PII row's)."""
    orders, piis = PartnerDelivery.__table__, PII.__table__
    stored = insert(orders).values({column.name: bindparam(column.name, type_=column.type) for column in orders.c})
    stored = stored.returning(orders.c.id).cte("stored_order")
    return insert(piis).from_select([column.name for column in piis.c], select(*(
        stored.c.id if column.name == "partner_delivery_id" else bindparam(f"pii_{column.name}", type_=column.type)
        for column in piis.c)))


STORE_ORDER = _store_order_statement()


async def pii_id_of(session: AsyncSession, partner_delivery_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(PII.id).where(PII.partner_delivery_id == partner_delivery_id))


async def stranded_orders(session: AsyncSession, stored_after: datetime, stored_before: datetime,
                          ) -> list[tuple[PartnerDelivery, uuid.UUID]]:
    """Orders stored in the window, still `created` and never accepted by a delivery workflow, oldest first, each
    with its PII id: those whose workflow may never have started. One that waits for a robot was accepted, so it
    is not named again on every pass."""
    rows = await session.execute(
        select(PartnerDelivery, PII.id).join(PII, PII.partner_delivery_id == PartnerDelivery.id)
        .where(PartnerDelivery.status == DeliveryStatus.CREATED.value, PartnerDelivery.delivery_id.is_not(None),
               PartnerDelivery.accepted_at.is_(None),
               PartnerDelivery.created_at > stored_after, PartnerDelivery.created_at <= stored_before)
        .order_by(PartnerDelivery.created_at))
    return [(order, pii_id) for order, pii_id in rows]


async def accept_order(session: AsyncSession, partner_delivery_id: uuid.UUID, delivery_id: uuid.UUID) -> bool:
    """Mark a stored order as accepted by its delivery workflow (the first time counts); False if the order is
    unknown."""
    now = datetime.now(UTC)
    result = await session.execute(
        update(PartnerDelivery).where(PartnerDelivery.id == partner_delivery_id,
                                      PartnerDelivery.delivery_id == delivery_id)
        .values(updated_at=now, accepted_at=func.coalesce(PartnerDelivery.accepted_at, now))
    )
    return result.rowcount == 1


def _record_state_statement():
    """A callback's status entry, written once, and the order's status moved, in one statement (a WITH that writes
    runs whether or not the UPDATE reads it)."""
    order_id, sequence = bindparam("order_id"), bindparam("seq")
    recorded = insert(ExternalState).values(
        id=bindparam("entry_id"), partner_delivery_id=order_id, sequence=sequence, status=bindparam("partner_word"),
        internal_status=bindparam("our_status"), occurred_at=bindparam("occurred"),
        callback_status=CallbackStatus.PENDING.value, callback_attempts=0,
    ).on_conflict_do_nothing(constraint="uq_external_state_delivery_sequence").cte("recorded")
    # The order's status only moves forward: never back past a later sequence, never out of an end state (unless
    # into another one).
    later = select(ExternalState.id).where(ExternalState.partner_delivery_id == order_id,
                                           ExternalState.sequence > sequence)
    ended = PartnerDelivery.status.in_([status.value for status in TERMINAL_STATUSES])
    return update(PartnerDelivery).where(
        PartnerDelivery.id == order_id, ~later.exists(), or_(bindparam("terminal", type_=Boolean()), ~ended),
    ).values(status=bindparam("our_status"), updated_at=bindparam("moved_at")).add_cte(recorded).execution_options(
        synchronize_session=False)  # the order loaded in the session keeps the status it was read with


# Built once: every callback runs these.
ORDER_WITH_PARTNER = (select(PartnerDelivery, Partner).join(Partner, Partner.id == PartnerDelivery.partner_id)
                      .where(PartnerDelivery.id == bindparam("order_id")))
RECORD_STATE = _record_state_statement()
LOCKED_TRAIL = (select(ExternalState).where(ExternalState.partner_delivery_id == bindparam("order_id"))
                .order_by(ExternalState.sequence).with_for_update())
MARK_CALLBACK = update(ExternalState).where(
    ExternalState.partner_delivery_id == bindparam("order_id"), ExternalState.sequence == bindparam("seq"),
).values(callback_status=bindparam("outcome"), last_error=bindparam("error"),
         callback_attempts=ExternalState.callback_attempts + 1,
         delivered_at=func.coalesce(bindparam("sent_at", type_=ExternalState.delivered_at.type),
                                    ExternalState.delivered_at)).execution_options(synchronize_session=False)


async def partner_of(session: AsyncSession, partner_delivery_id: uuid.UUID) -> tuple[Partner, PartnerDelivery]:
    """An order and the partner it belongs to, in one query."""
    order, partner = (await session.execute(ORDER_WITH_PARTNER, {"order_id": partner_delivery_id})).one()
    return partner, order


async def record_external_state(session: AsyncSession, callback: StatusCallback, partner_status: str,
                                ) -> tuple[ExternalState, list[ExternalState]]:
    """The partner-facing status for one callback sequence, written once (the order keeps our own status word);
    returned with the order's whole status trail, in sequence order and locked until the transaction ends."""
    await session.execute(RECORD_STATE, {
        "order_id": callback.partner_delivery_id, "seq": callback.sequence, "entry_id": uuid.uuid4(),
        "partner_word": partner_status, "our_status": callback.status.value, "occurred": callback.occurred_at,
        "terminal": callback.status in TERMINAL_STATUSES, "moved_at": datetime.now(UTC),
    })
    trail = list(await session.scalars(LOCKED_TRAIL, {"order_id": callback.partner_delivery_id}))
    return next(state for state in trail if state.sequence == callback.sequence), trail


async def mark_callback(db: AsyncSession | AsyncConnection, partner_delivery_id: uuid.UUID, sequence: int,
                        status: CallbackStatus, error: str | None = None) -> None:
    """Record the outcome of one callback attempt (one statement: on a connection, it commits on its own)."""
    await db.execute(MARK_CALLBACK, {
        "order_id": partner_delivery_id, "seq": sequence, "outcome": status.value, "error": error,
        "sent_at": datetime.now(UTC) if status is CallbackStatus.DELIVERED else None,
    })


async def set_webhook_enabled(session: AsyncSession, partner_id: uuid.UUID, enabled: bool) -> None:
    await session.execute(update(Partner).where(Partner.id == partner_id).values(webhook_enabled=enabled))


async def external_trail(session: AsyncSession, partner_delivery_id: uuid.UUID) -> list[ExternalState]:
    return list(await session.scalars(select(ExternalState).where(
        ExternalState.partner_delivery_id == partner_delivery_id).order_by(ExternalState.sequence)))


async def order_of_quote(session: AsyncSession, quote_id: uuid.UUID) -> PartnerDelivery | None:
    """The order that used a quote, if any."""
    return await session.scalar(select(PartnerDelivery).where(PartnerDelivery.quote_id == quote_id))


async def order_by_tracking_token(session: AsyncSession, token: str) -> PartnerDelivery | None:
    return await session.scalar(select(PartnerDelivery).where(PartnerDelivery.tracking_token == token))


async def list_orders(session: AsyncSession, partner_id: uuid.UUID, *, statuses: list[str] | None,
                      created_after: datetime | None, created_before: datetime | None,
                      after: tuple[datetime, uuid.UUID] | None, limit: int, offset: int = 0) -> list[PartnerDelivery]:
    """A partner's orders, newest first, from just after the cursor `after` (created_at, id), skipping `offset`."""
    query = select(PartnerDelivery).where(PartnerDelivery.partner_id == partner_id)
    if statuses:
        query = query.where(PartnerDelivery.status.in_(statuses))
    if created_after is not None:
        query = query.where(PartnerDelivery.created_at >= created_after)
    if created_before is not None:
        query = query.where(PartnerDelivery.created_at < created_before)
    if after is not None:
        query = query.where(tuple_(PartnerDelivery.created_at, PartnerDelivery.id) < tuple_(*after))
    query = query.order_by(PartnerDelivery.created_at.desc(), PartnerDelivery.id.desc()).offset(offset).limit(limit)
    return list(await session.scalars(query))


async def update_customer(session: AsyncSession, vault: Vault, partner_delivery_id: uuid.UUID, *,
                          instructions: str | None, phone: str | None) -> None:
    """Replace the sealed dropoff instructions and/or phone of an order (not once its data is purged)."""
    pii = await session.scalar(select(PII).where(PII.partner_delivery_id == partner_delivery_id,
                                                 PII.purged_at.is_(None)).with_for_update())
    for column, value in (("dropoff_instructions_encrypted", instructions), ("customer_phone_encrypted", phone)):
        if pii is not None and value is not None:
            seal(vault, pii, column, value)


async def record_cancellation(session: AsyncSession, partner_delivery_id: uuid.UUID, reason: str,
                              status: str) -> None:
    """The partner's cancellation and where it left the order (cancelled, or returning once loaded)."""
    await session.execute(update(PartnerDelivery).where(PartnerDelivery.id == partner_delivery_id)
                          .values(cancel_reason=reason, status=status, updated_at=datetime.now(UTC)))


async def schedule_purge(session: AsyncSession, partner_delivery_id: uuid.UUID, purge_after: datetime) -> None:
    """Set when an ended order's personal data is erased (kept if already set)."""
    await session.execute(update(PII).where(PII.partner_delivery_id == partner_delivery_id,
                                            PII.purge_after.is_(None)).values(purge_after=purge_after))


async def save_quote_request(session: AsyncSession, vault: Vault, quote_id: uuid.UUID, partner_id: uuid.UUID,
                             external_delivery_id: str, request: dict, expires_at: datetime) -> None:
    """Keep a quoted order's request, sealed, until the quote is accepted or expires."""
    row = QuoteRequest(quote_id=quote_id, partner_id=partner_id, external_delivery_id=external_delivery_id,
                       expires_at=expires_at, created_at=datetime.now(UTC))
    seal(vault, row, "request_encrypted", json.dumps(request))
    await session.execute(insert(QuoteRequest).values(**row.model_dump())
                          .on_conflict_do_nothing(index_elements=[QuoteRequest.quote_id]))


async def find_quote_request(session: AsyncSession, vault: Vault, partner_id: uuid.UUID, *,
                             quote_id: uuid.UUID | None = None, external_delivery_id: str | None = None,
                             ) -> tuple[QuoteRequest, dict] | None:
    """A partner's quoted request by quote id, or its newest for one order id, with the request unsealed."""
    query = select(QuoteRequest).where(QuoteRequest.partner_id == partner_id)
    if quote_id is not None:
        query = query.where(QuoteRequest.quote_id == quote_id)
    if external_delivery_id is not None:
        query = query.where(QuoteRequest.external_delivery_id == external_delivery_id)
    found = await session.scalar(query.order_by(QuoteRequest.created_at.desc()).limit(1))
    return (found, json.loads(unseal(vault, found, "request_encrypted"))) if found else None


async def purge_pii(session: AsyncSession) -> int:
    """Erase the sealed personal data whose time has come and coarsen those orders' dropoffs, and delete expired
    quote requests; return how many orders were purged."""
    now = datetime.now(UTC)
    await session.execute(delete(QuoteRequest).where(QuoteRequest.expires_at <= now))
    purged = list(await session.scalars(update(PII).where(PII.purge_after <= now, PII.purged_at.is_(None)).values(
        customer_name_encrypted=None, customer_phone_encrypted=None, dropoff_address_encrypted=None,
        dropoff_instructions_encrypted=None, purged_at=now).returning(PII.partner_delivery_id)))
    if purged:
        await session.execute(update(PartnerDelivery).where(PartnerDelivery.id.in_(purged))
                              .values(**coarsened_dropoff()))
    return len(purged)


async def list_partners(session: AsyncSession) -> list[Partner]:
    return list(await session.scalars(select(Partner).order_by(Partner.created_at)))


async def find_partner(session: AsyncSession, name_or_id: str) -> Partner | None:
    """A partner by id, or by a name no other partner has."""
    try:
        return await session.get(Partner, uuid.UUID(name_or_id))
    except ValueError:
        named = list(await session.scalars(select(Partner).where(Partner.name == name_or_id).limit(2)))
        return named[0] if len(named) == 1 else None


async def failed_callbacks(session: AsyncSession, delivery_id: uuid.UUID | None = None) -> list[StatusCallback]:
    """Callbacks that ran out of retries, as they were sent, in delivery and sequence order."""
    query = (select(ExternalState, PartnerDelivery.delivery_id)
             .join(PartnerDelivery, PartnerDelivery.id == ExternalState.partner_delivery_id)
             .where(ExternalState.callback_status == CallbackStatus.FAILED))
    if delivery_id is not None:
        query = query.where(PartnerDelivery.delivery_id == delivery_id)
    rows = await session.execute(query.order_by(PartnerDelivery.delivery_id, ExternalState.sequence))
    return [StatusCallback(partner_delivery_id=state.partner_delivery_id, delivery_id=delivery, sequence=state.sequence,
                           status=state.internal_status, occurred_at=state.occurred_at)
            for state, delivery in rows]


async def reseal(session: AsyncSession, vault: Vault) -> dict[str, int]:
    """Re-encrypt every sealed value that is not under the vault's current key; return the counts."""
    counts = {"pii": 0, "credentials": 0, "quote_requests": 0}
    for pii in await session.scalars(select(PII).where(PII.key_id != vault.current, PII.purged_at.is_(None))
                                     .with_for_update()):
        _reseal(vault, pii, *(column for column in PII_FIELDS if getattr(pii, column) is not None))
        pii.key_id = vault.current
        counts["pii"] += 1
    prefix = f"{vault.current}:"
    for credential in await session.scalars(select(PartnerCredential).where(
            PartnerCredential.secret_encrypted.is_not(None),
            PartnerCredential.secret_encrypted.not_like(prefix + "%")).with_for_update()):
        _reseal(vault, credential, "secret_encrypted")
        counts["credentials"] += 1
    for request in await session.scalars(select(QuoteRequest).where(
            QuoteRequest.request_encrypted.not_like(prefix + "%")).with_for_update()):
        _reseal(vault, request, "request_encrypted")
        counts["quote_requests"] += 1
    return counts


def _reseal(vault: Vault, row, *columns: str) -> None:
    for column in columns:
        seal(vault, row, column, unseal(vault, row, column))
