"""The partner accounts desk: who a partner is by its credentials, the access tokens it is granted, its stores.

Every dialect's authentication asks it who is calling (an API key, a DoorDash JWT's signing secret, an Uber
access token, which it also grants for client credentials); the native API registers and lists a partner's
pickup stores here. Orders are the partner desk's (`desks.partner`).
"""

import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Row

from core.contracts import Point
from core.crypto import Vault
from core.db import Databases
from core.markets import market_for
from core.services import Service
from core.settings import Settings
from desks.errors import Refusal
from desks.orders import AccessGrant, PartnerAccount, StoreInfo
from services.integrations import credentials
from services.integrations import repository as integrations
from services.integrations.models import CredentialKind, Partner, PartnerDialect, Store


class PartnerAccounts:
    """A partner's credentials, access tokens and stores, whatever dialect it speaks."""

    def __init__(self, databases: Databases, vault: Vault, settings: Settings):
        self.databases, self.vault, self.settings = databases, vault, settings

    # ---- credentials ---------------------------------------------------------------------------------

    async def partner_by_api_key(self, api_key: str) -> PartnerAccount | None:
        """The partner whose unexpired API key this is (native and Olo dialects)."""
        async with self.databases.reader(Service.INTEGRATIONS) as connection:
            partner = await credentials.partner_by_api_key(connection, api_key)
        return _account(partner) if partner else None

    async def partner_by_access_token(self, token: str) -> PartnerAccount | None:
        """The Uber-dialect partner an unexpired access token was issued to."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner = await credentials.partner_by_secret(session, CredentialKind.ACCESS_TOKEN, token)
        return _account(partner) if partner else None

    async def drive_signing_secret(self, developer_id: str, key_id: str) -> tuple[PartnerAccount, str] | None:
        """A DoorDash-dialect partner and its unexpired JWT signing secret for (developer_id, key_id)."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            found = await credentials.signing_secret(session, self.vault, developer_id, key_id)
        return (_account(found[0]), found[1]) if found else None

    async def grant_access_token(self, client_id: str, client_secret: str,
                                 admit: Callable[[PartnerAccount], object]) -> AccessGrant | None:
        """A bearer token for an Uber-dialect partner's client credentials, once `admit` lets the partner in
        (it raises otherwise); None for unknown credentials."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner = await credentials.partner_by_secret(session, CredentialKind.CLIENT_SECRET, client_secret,
                                                          key_id=client_id)
            if partner is None or partner.dialect != PartnerDialect.UBER:
                return None
            admit(_account(partner))
            ttl = self.settings.uber_access_token_seconds
            token = await credentials.issue_access_token(session, partner, timedelta(seconds=ttl))
        return AccessGrant(access_token=token, expires_in=ttl)

    # ---- stores --------------------------------------------------------------------------------------

    async def add_store(self, partner_id: uuid.UUID, store_id: str, name: str, latitude: float,
                        longitude: float, preparation_minutes: int | None = None) -> StoreInfo:
        """Register (or update) a pickup location and its preparation estimate (minutes; None: the market's);
        422 `outside_service_area` outside every market."""
        market = market_for(Point(latitude=latitude, longitude=longitude))
        if market is None:
            raise Refusal(422, "outside_service_area", "the store is outside every service area", "latitude")
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            store = await integrations.add_store(session, partner_id, store_id, name, latitude, longitude,
                                                 market.name, preparation_minutes)
        return _store_info(store)

    async def list_stores(self, partner_id: uuid.UUID) -> list[StoreInfo]:
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            return [_store_info(store) for store in await integrations.list_stores(session, partner_id)]


def _account(partner: Partner | Row) -> PartnerAccount:
    return PartnerAccount(id=partner.id, name=partner.name, dialect=PartnerDialect(partner.dialect),
                          account_id=partner.account_id, live_mode=partner.live_mode)


def _store_info(store: Store) -> StoreInfo:
    return StoreInfo(store_id=store.external_store_id, name=store.name, latitude=store.latitude,
                     longitude=store.longitude, market=store.market,
                     preparation_minutes=store.preparation_minutes)
