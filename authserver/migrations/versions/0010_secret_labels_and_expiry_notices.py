"""Secret labels and expiry notices

client_secrets.label: an optional text the owner gives a secret to tell it apart from the others
(NULL for every existing secret). client_secrets.expiry_noticed_at: when the `secret.expiring`
audit event was written for the secret (NULL: not yet), so it is written once.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE on every database: no batch "recreate" of a table on SQLite.
    op.add_column('client_secrets', sa.Column('label', sa.String(length=100), nullable=True))
    op.add_column('client_secrets', sa.Column('expiry_noticed_at', sa.BigInteger(), nullable=True))


def downgrade():
    op.drop_column('client_secrets', 'expiry_noticed_at')
    op.drop_column('client_secrets', 'label')
