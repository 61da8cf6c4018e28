"""Queries of the Integrations service: partners, stores, partner orders, their PII and status trail."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import StatusCallback
from core.crypto import Vault, hash_credential, new_credential, new_webhook_secret
from services.integrations.models import (
    PII, CallbackStatus, ExternalState, Partner, PartnerDelivery, Store,
)


async def create_partner(session: AsyncSession, vault: Vault, name: str, dialect: str,
                         webhook_url: str | None) -> tuple[Partner, dict[str, str]]:
    """Register a partner; return it with its credentials, which are shown once and stored only hashed or sealed."""
    api_key, webhook_secret = new_credential("sk"), new_webhook_secret()
    partner = Partner(name=name, dialect=dialect, api_key_hash=hash_credential(api_key), webhook_url=webhook_url,
                      webhook_secret_encrypted=vault.encrypt(webhook_secret), webhook_enabled=webhook_url is not None)
    session.add(partner)
    await session.flush()
    return partner, {"api_key": api_key, "webhook_secret": webhook_secret}


async def authenticate_partner(session: AsyncSession, api_key: str) -> Partner | None:
    return await session.scalar(select(Partner).where(Partner.api_key_hash == hash_credential(api_key)))


async def add_store(session: AsyncSession, partner_id: uuid.UUID, external_store_id: str, name: str,
                    latitude: float, longitude: float, market: str) -> Store:
    """Register (or update) a partner's pickup location under its own store id."""
    values = dict(partner_id=partner_id, external_store_id=external_store_id, name=name, latitude=latitude,
                  longitude=longitude, market=market)
    statement = insert(Store).values(id=uuid.uuid4(), created_at=datetime.now(UTC), **values)
    statement = statement.on_conflict_do_update(
        constraint="uq_store_partner_external",
        set_={k: statement.excluded[k] for k in ("name", "latitude", "longitude", "market")},
    )
    await session.execute(statement)
    return await find_store(session, partner_id, external_store_id)


async def find_store(session: AsyncSession, partner_id: uuid.UUID, external_store_id: str) -> Store | None:
    return await session.scalar(
        select(Store).where(Store.partner_id == partner_id, Store.external_store_id == external_store_id))


async def list_stores(session: AsyncSession, partner_id: uuid.UUID) -> list[Store]:
    return list(await session.scalars(select(Store).where(Store.partner_id == partner_id).order_by(Store.name)))


async def find_partner_delivery(session: AsyncSession, partner_id: uuid.UUID,
                                external_delivery_id: str) -> PartnerDelivery | None:
    return await session.scalar(select(PartnerDelivery).where(
        PartnerDelivery.partner_id == partner_id, PartnerDelivery.external_delivery_id == external_delivery_id))


async def find_order_of_delivery(session: AsyncSession, partner_id: uuid.UUID,
                                 delivery_id: uuid.UUID) -> PartnerDelivery | None:
    return await session.scalar(select(PartnerDelivery).where(
        PartnerDelivery.partner_id == partner_id, PartnerDelivery.delivery_id == delivery_id))


async def store_order(session: AsyncSession, vault: Vault, order: PartnerDelivery, customer: dict[str, str | None],
                      ) -> PII:
    """Store a partner order and its customer's data, sealed; the caller commits both or neither."""
    session.add(order)
    await session.flush()
    pii = PII(partner_delivery_id=order.id, key_id=vault.current,
              customer_name_encrypted=vault.encrypt(customer["name"]),
              customer_phone_encrypted=vault.encrypt(customer["phone"]),
              dropoff_address_encrypted=vault.encrypt(customer["address"] or ""),
              dropoff_instructions_encrypted=vault.encrypt(customer["instructions"])
              if customer.get("instructions") else None)
    session.add(pii)
    await session.flush()
    return pii


async def pii_id_of(session: AsyncSession, partner_delivery_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(PII.id).where(PII.partner_delivery_id == partner_delivery_id))


async def accept_order(session: AsyncSession, partner_delivery_id: uuid.UUID, delivery_id: uuid.UUID) -> bool:
    """Mark a stored order as accepted by its delivery workflow; False if the order is unknown."""
    result = await session.execute(
        update(PartnerDelivery).where(PartnerDelivery.id == partner_delivery_id,
                                      PartnerDelivery.delivery_id == delivery_id)
        .values(status="accepted", updated_at=datetime.now(UTC))
    )
    return result.rowcount == 1


async def record_external_state(session: AsyncSession, callback: StatusCallback, partner_status: str) -> ExternalState:
    """The partner-facing status for one callback sequence, written once."""
    await session.execute(insert(ExternalState).values(
        id=uuid.uuid4(), partner_delivery_id=callback.partner_delivery_id, sequence=callback.sequence,
        status=partner_status, internal_status=callback.status.value, occurred_at=callback.occurred_at,
        callback_status=CallbackStatus.PENDING.value, callback_attempts=0,
    ).on_conflict_do_nothing(constraint="uq_external_state_delivery_sequence"))
    await session.execute(update(PartnerDelivery).where(PartnerDelivery.id == callback.partner_delivery_id)
                          .values(status=partner_status, updated_at=datetime.now(UTC)))
    return await session.scalar(select(ExternalState).where(
        ExternalState.partner_delivery_id == callback.partner_delivery_id,
        ExternalState.sequence == callback.sequence).with_for_update())


async def partner_of(session: AsyncSession, partner_delivery_id: uuid.UUID) -> tuple[Partner, PartnerDelivery]:
    order = await session.get(PartnerDelivery, partner_delivery_id)
    return await session.get(Partner, order.partner_id), order


async def mark_callback(session: AsyncSession, partner_delivery_id: uuid.UUID, sequence: int, status: CallbackStatus,
                        error: str | None = None) -> None:
    """Record the outcome of one callback attempt."""
    values: dict = {"callback_status": status.value, "last_error": error,
                    "callback_attempts": ExternalState.callback_attempts + 1}
    if status is CallbackStatus.DELIVERED:
        values["delivered_at"] = datetime.now(UTC)
    await session.execute(update(ExternalState).where(
        ExternalState.partner_delivery_id == partner_delivery_id, ExternalState.sequence == sequence).values(**values))


async def set_webhook_enabled(session: AsyncSession, partner_id: uuid.UUID, enabled: bool) -> None:
    await session.execute(update(Partner).where(Partner.id == partner_id).values(webhook_enabled=enabled))


async def external_trail(session: AsyncSession, partner_delivery_id: uuid.UUID) -> list[ExternalState]:
    return list(await session.scalars(select(ExternalState).where(
        ExternalState.partner_delivery_id == partner_delivery_id).order_by(ExternalState.sequence)))
