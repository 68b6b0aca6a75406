"""Signing-key activation and withdrawal; the signing key of each access token

signing_keys.activates_at: when a key may start signing (until now every worker computed it from its
own activation delay; a rotation now stores it, so an emergency rotation takes effect everywhere).
Existing keys: created_at plus the activation delay, as the workers computed it, except the first key,
which signed from its creation. signing_keys.withdrawn_at: a compromised key, unpublished and its
tokens inactive. access_tokens.kid: the key that signed the token (NULL for tokens issued before).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE on every database: no batch "recreate" of a table on SQLite.
    op.add_column('signing_keys', sa.Column('activates_at', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('signing_keys', sa.Column('withdrawn_at', sa.BigInteger(), nullable=True))
    op.add_column('access_tokens', sa.Column('kid', sa.String(length=64), nullable=True))

    delay = current_app.extensions["authserver.settings"].signing_key_activation_delay
    keys = sa.table("signing_keys", sa.column("created_at", sa.BigInteger()), sa.column("activates_at", sa.BigInteger()))
    conn = op.get_bind()
    conn.execute(keys.update().values(activates_at=keys.c.created_at + sa.bindparam("delay", delay, sa.BigInteger())))
    first = sa.select(sa.func.min(keys.c.created_at)).scalar_subquery()
    conn.execute(keys.update().where(keys.c.created_at == first).values(activates_at=keys.c.created_at))


def downgrade():
    op.drop_column('access_tokens', 'kid')
    op.drop_column('signing_keys', 'withdrawn_at')
    op.drop_column('signing_keys', 'activates_at')
