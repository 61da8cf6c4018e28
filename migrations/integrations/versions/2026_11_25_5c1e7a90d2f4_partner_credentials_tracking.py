"""Partner credentials per dialect with rotation; tracking tokens, quotes and cancel reasons on orders.

Revision ID: 5c1e7a90d2f4
Revises: d22ad2ebb8b9
Create Date: 2026-11-25 13:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5c1e7a90d2f4'
down_revision: str | Sequence[str] | None = 'd22ad2ebb8b9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Move partner secrets into partner_credential (keeping existing ones valid); extend partner_delivery."""
    op.create_table('partner_credential',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('partner_id', sa.Uuid(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('key_id', sa.String(length=64), nullable=True),
        sa.Column('secret_hash', sa.String(length=128), nullable=True),
        sa.Column('secret_encrypted', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['partner_id'], ['partner.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('secret_hash'),
    )
    op.create_index(op.f('ix_partner_credential_key_id'), 'partner_credential', ['key_id'], unique=False)
    op.create_index(op.f('ix_partner_credential_partner_id'), 'partner_credential', ['partner_id'], unique=False)
    op.execute("""
        INSERT INTO partner_credential (id, partner_id, kind, secret_hash, created_at)
        SELECT gen_random_uuid(), id, 'api_key', api_key_hash, created_at FROM partner WHERE api_key_hash IS NOT NULL
    """)
    op.execute("""
        INSERT INTO partner_credential (id, partner_id, kind, secret_encrypted, created_at)
        SELECT gen_random_uuid(), id, 'webhook_secret', webhook_secret_encrypted, created_at
        FROM partner WHERE webhook_secret_encrypted IS NOT NULL
    """)
    op.drop_column('partner', 'api_key_hash')
    op.drop_column('partner', 'webhook_secret_encrypted')
    op.add_column('partner', sa.Column('account_id', sa.String(length=64), nullable=True))
    op.create_unique_constraint(op.f('partner_account_id_key'), 'partner', ['account_id'])

    op.add_column('partner_delivery', sa.Column('quote_id', sa.Uuid(), nullable=True))
    op.create_unique_constraint(op.f('partner_delivery_quote_id_key'), 'partner_delivery', ['quote_id'])
    # Orders stored before this revision keep no route; they are all past their start.
    op.add_column('partner_delivery', sa.Column('market', sa.String(length=64), nullable=False, server_default=''))
    op.alter_column('partner_delivery', 'market', server_default=None)
    for column in ('pickup_latitude', 'pickup_longitude', 'dropoff_latitude', 'dropoff_longitude'):
        op.add_column('partner_delivery', sa.Column(column, sa.Float(), nullable=False, server_default='0'))
        op.alter_column('partner_delivery', column, server_default=None)
    op.add_column('partner_delivery', sa.Column('tracking_token', sa.String(length=64), nullable=True))
    op.execute("UPDATE partner_delivery SET tracking_token = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')")
    op.alter_column('partner_delivery', 'tracking_token', nullable=False)
    op.create_unique_constraint(op.f('partner_delivery_tracking_token_key'), 'partner_delivery', ['tracking_token'])
    op.add_column('partner_delivery', sa.Column('cancel_reason', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_partner_delivery_created_at'), 'partner_delivery', ['created_at'], unique=False)


def downgrade() -> None:
    """Back to one API key hash and one sealed webhook secret per partner (the newest of each)."""
    op.drop_index(op.f('ix_partner_delivery_created_at'), table_name='partner_delivery')
    op.drop_column('partner_delivery', 'cancel_reason')
    op.drop_constraint(op.f('partner_delivery_tracking_token_key'), 'partner_delivery', type_='unique')
    op.drop_column('partner_delivery', 'tracking_token')
    for column in ('market', 'pickup_latitude', 'pickup_longitude', 'dropoff_latitude', 'dropoff_longitude'):
        op.drop_column('partner_delivery', column)
    op.drop_constraint(op.f('partner_delivery_quote_id_key'), 'partner_delivery', type_='unique')
    op.drop_column('partner_delivery', 'quote_id')
    op.drop_constraint(op.f('partner_account_id_key'), 'partner', type_='unique')
    op.drop_column('partner', 'account_id')
    op.add_column('partner', sa.Column('webhook_secret_encrypted', sa.Text(), nullable=True))
    op.add_column('partner', sa.Column('api_key_hash', sa.String(length=128), nullable=True))
    op.create_unique_constraint('partner_api_key_hash_key', 'partner', ['api_key_hash'])
    op.execute("""
        UPDATE partner p SET
          api_key_hash = (SELECT secret_hash FROM partner_credential c WHERE c.partner_id = p.id
                          AND c.kind = 'api_key' ORDER BY created_at DESC LIMIT 1),
          webhook_secret_encrypted = (SELECT secret_encrypted FROM partner_credential c WHERE c.partner_id = p.id
                          AND c.kind = 'webhook_secret' ORDER BY created_at DESC LIMIT 1)
    """)
    op.drop_index(op.f('ix_partner_credential_partner_id'), table_name='partner_credential')
    op.drop_index(op.f('ix_partner_credential_key_id'), table_name='partner_credential')
    op.drop_table('partner_credential')
