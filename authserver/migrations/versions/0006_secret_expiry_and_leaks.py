"""Client secret expiry and leak reports

client_secrets.expires_at: from this time on the secret no longer authenticates (NULL: never; every
existing secret keeps working as before). client_secrets.leaked_at: when a leak report
(POST /oauth/secret-leak) named the secret; it no longer authenticates, and the row stays so its
owner sees why.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE on every database: no batch "recreate" of a table on SQLite.
    op.add_column('client_secrets', sa.Column('expires_at', sa.BigInteger(), nullable=True))
    op.add_column('client_secrets', sa.Column('leaked_at', sa.BigInteger(), nullable=True))


def downgrade():
    op.drop_column('client_secrets', 'leaked_at')
    op.drop_column('client_secrets', 'expires_at')
