"""Partner credentials: issued per dialect, stored only hashed or sealed, rotated with an overlap window."""

import base64
import os
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.crypto import Vault, hash_credential, new_credential, new_webhook_secret
from services.integrations.dialects import callback_format
from services.integrations.models import CredentialKind, Partner, PartnerCredential, PartnerDialect
from services.integrations.sealing import seal, unseal

K = CredentialKind
# The credentials each dialect authenticates with; every dialect whose webhooks we sign also gets a webhook secret.
DIALECT_CREDENTIALS = {
    PartnerDialect.NATIVE: (K.API_KEY,),
    PartnerDialect.OLO: (K.API_KEY,),
    PartnerDialect.DOORDASH: (K.SIGNING_KEY,),
    PartnerDialect.UBER: (K.CLIENT_SECRET,),
}


def _active(now: datetime):
    return or_(PartnerCredential.expires_at.is_(None), PartnerCredential.expires_at > now)


async def create_partner(session: AsyncSession, vault: Vault, name: str, dialect: str, webhook_url: str | None,
                         webhook_authorization: str | None = None, live_mode: bool = True,
                         ) -> tuple[Partner, dict[str, str]]:
    """Register a partner; return it with its credentials, shown once and stored only hashed or sealed. A test
    partner (`live_mode` False) has credentials of its own: its deliveries are the sandbox's, never a real robot's.

    A DoorDash partner with a webhook must give the Authorization value its webhooks carry: DoorDash authenticates
    them by nothing else."""
    if dialect == PartnerDialect.DOORDASH and webhook_url is not None and not webhook_authorization:
        raise ValueError("a doordash partner's webhook needs an Authorization value")
    account_id = str(uuid.uuid4()) if dialect in (PartnerDialect.DOORDASH, PartnerDialect.UBER) else None
    partner = Partner(name=name, dialect=dialect, account_id=account_id, webhook_url=webhook_url,
                      webhook_enabled=webhook_url is not None, live_mode=live_mode)
    session.add(partner)
    await session.flush()
    shown = {"partner_id": str(partner.id), "dialect": dialect, "live_mode": live_mode}
    if dialect == PartnerDialect.DOORDASH:
        shown["developer_id"] = account_id
    if dialect == PartnerDialect.UBER:
        shown["customer_id"] = account_id
    shown.update(await _issue(session, vault, partner))
    if webhook_authorization:
        session.add(_sealed(vault, partner, K.WEBHOOK_AUTHORIZATION, webhook_authorization))
    return partner, shown


async def update_webhook(session: AsyncSession, vault: Vault, partner: Partner, webhook_url: str | None,
                         webhook_authorization: str | None) -> None:
    """Point the partner's callbacks at another URL and/or give them another Authorization value (DoorDash), from
    now on: DoorDash checks one value, so the old one ends at once. Either turns the webhook back on (a callback
    parked while it was off waits for an operator's retry)."""
    now = datetime.now(UTC)
    if webhook_url is not None:
        partner.webhook_url = webhook_url
    if webhook_authorization is not None:
        await session.execute(update(PartnerCredential).where(
            PartnerCredential.partner_id == partner.id, PartnerCredential.kind == K.WEBHOOK_AUTHORIZATION,
            _active(now)).values(expires_at=now))
        session.add(_sealed(vault, partner, K.WEBHOOK_AUTHORIZATION, webhook_authorization))
    partner.webhook_enabled = partner.webhook_url is not None
    await session.flush()


async def rotate(session: AsyncSession, vault: Vault, partner: Partner, overlap: timedelta) -> dict[str, str]:
    """Issue new credentials; the current ones, and access tokens granted so far, keep working for `overlap`
    (a token less if it expires sooner), then expire."""
    now = datetime.now(UTC)
    kinds = (*DIALECT_CREDENTIALS[PartnerDialect(partner.dialect)], K.WEBHOOK_SECRET)
    await session.execute(update(PartnerCredential).where(
        PartnerCredential.partner_id == partner.id, PartnerCredential.kind.in_(kinds), _active(now),
    ).values(expires_at=now + overlap))
    # Access tokens granted for the old client secret end with it, not up to a full token lifetime later.
    await session.execute(update(PartnerCredential).where(
        PartnerCredential.partner_id == partner.id, PartnerCredential.kind == K.ACCESS_TOKEN, _active(now),
    ).values(expires_at=func.least(func.coalesce(PartnerCredential.expires_at, now + overlap), now + overlap)))
    shown = {"partner_id": str(partner.id), "dialect": partner.dialect,
             "previous_credentials_expire_at": (now + overlap).isoformat()}
    shown.update(await _issue(session, vault, partner))
    return shown


async def _issue(session: AsyncSession, vault: Vault, partner: Partner) -> dict[str, str]:
    shown: dict[str, str] = {}
    for kind in DIALECT_CREDENTIALS[PartnerDialect(partner.dialect)]:
        if kind is K.API_KEY:
            shown["api_key"] = new_credential("sk")
            row = PartnerCredential(kind=kind, secret_hash=hash_credential(shown["api_key"]))
        elif kind is K.SIGNING_KEY:
            shown["key_id"] = str(uuid.uuid4())
            shown["signing_secret"] = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
            row = _sealed(vault, partner, kind, shown["signing_secret"], key_id=shown["key_id"])
        else:
            shown["client_id"] = f"cli_{secrets.token_hex(12)}"
            shown["client_secret"] = new_credential("cs")
            row = PartnerCredential(kind=kind, key_id=shown["client_id"],
                                    secret_hash=hash_credential(shown["client_secret"]))
        row.partner_id = partner.id
        session.add(row)
    if callback_format(partner.dialect).secret_kind is K.WEBHOOK_SECRET:  # Drive's carry the partner's Authorization
        shown["webhook_secret"] = new_webhook_secret()
        session.add(_sealed(vault, partner, K.WEBHOOK_SECRET, shown["webhook_secret"]))
    await session.flush()
    return shown


def _sealed(vault: Vault, partner: Partner, kind: CredentialKind, secret: str,
            key_id: str | None = None) -> PartnerCredential:
    """A credential whose secret is stored sealed (we must use it in clear: signing, verifying)."""
    credential = PartnerCredential(partner_id=partner.id, kind=kind, key_id=key_id)
    seal(vault, credential, "secret_encrypted", secret)
    return credential


async def partner_by_secret(session: AsyncSession, kind: CredentialKind, secret: str,
                            key_id: str | None = None) -> Partner | None:
    """The partner holding this unexpired hashed secret (an API key, an access token, a client secret)."""
    query = select(Partner).join(PartnerCredential, PartnerCredential.partner_id == Partner.id).where(
        PartnerCredential.kind == kind, PartnerCredential.secret_hash == hash_credential(secret),
        _active(datetime.now(UTC)))
    if key_id is not None:
        query = query.where(PartnerCredential.key_id == key_id)
    return await session.scalar(query)


_PARTNERS, _CREDENTIALS = Partner.__table__.c, PartnerCredential.__table__.c
# Built once: every request with an API key asks (native and Olo dialects).
PARTNER_BY_API_KEY = select(_PARTNERS.id, _PARTNERS.name, _PARTNERS.dialect, _PARTNERS.account_id,
                            _PARTNERS.live_mode).join_from(
    Partner.__table__, PartnerCredential.__table__, _CREDENTIALS.partner_id == _PARTNERS.id).where(
    _CREDENTIALS.kind == K.API_KEY.value, _CREDENTIALS.secret_hash == bindparam("secret_hash"),
    _active(bindparam("now")))


async def partner_by_api_key(db: AsyncConnection, api_key: str) -> Row | None:
    """The partner holding this unexpired API key: its id, name, dialect, account_id and live_mode."""
    return (await db.execute(PARTNER_BY_API_KEY, {"secret_hash": hash_credential(api_key),
                                                  "now": datetime.now(UTC)})).first()


async def signing_secret(session: AsyncSession, vault: Vault, account_id: str, key_id: str,
                         ) -> tuple[Partner, str] | None:
    """A DoorDash-dialect partner and its unexpired signing secret for (developer_id, key_id)."""
    row = (await session.execute(
        select(Partner, PartnerCredential).join(PartnerCredential, PartnerCredential.partner_id == Partner.id)
        .where(Partner.account_id == account_id, PartnerCredential.kind == K.SIGNING_KEY,
               PartnerCredential.key_id == key_id, _active(datetime.now(UTC)))
    )).first()
    return (row[0], unseal(vault, row[1], "secret_encrypted")) if row else None


async def issue_access_token(session: AsyncSession, partner: Partner, ttl: timedelta) -> str:
    """A bearer token for an OAuth client-credentials grant, stored hashed, valid for `ttl`; the partner's expired
    tokens are deleted with each grant, so they do not pile up."""
    now = datetime.now(UTC)
    await session.execute(delete(PartnerCredential).where(
        PartnerCredential.partner_id == partner.id, PartnerCredential.kind == K.ACCESS_TOKEN,
        PartnerCredential.expires_at <= now))
    token = new_credential("at")
    session.add(PartnerCredential(partner_id=partner.id, kind=K.ACCESS_TOKEN, secret_hash=hash_credential(token),
                                  expires_at=now + ttl))
    await session.flush()
    return token


# Built once: every callback that is sent reads its partner's secrets.
SECRETS_OF_KIND = select(PartnerCredential).where(
    PartnerCredential.partner_id == bindparam("partner_id"), PartnerCredential.kind == bindparam("kind"),
    _active(bindparam("now")),
).order_by(PartnerCredential.created_at.desc())


async def sealed_secrets(session: AsyncSession, vault: Vault, partner_id: uuid.UUID, kind: CredentialKind,
                         ) -> list[str]:
    """A partner's unexpired sealed secrets of one kind, newest first (callbacks sign with all of them)."""
    rows = await session.scalars(SECRETS_OF_KIND, {"partner_id": partner_id, "kind": kind, "now": datetime.now(UTC)})
    return [unseal(vault, credential, "secret_encrypted") for credential in rows]
