"""Secret hints

client_secrets.hint: the last four characters of a secret, kept at creation so its owner can tell
secrets apart (checksum characters of the scannable format: not enough to use the secret). NULL for
every existing secret: the server never had them in clear, so their hint stays unknown.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('client_secrets', sa.Column('hint', sa.String(length=4), nullable=True))


def downgrade():
    op.drop_column('client_secrets', 'hint')
