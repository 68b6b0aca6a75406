"""Client keys by URL

clients.jwks_uri: the URL of a JWK Set whose keys verify the client's assertions, besides the keys
pasted into client_keys (NULL: none, as for every existing client). clients.jwks_uri_added_at: when
it was registered.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE on every database: no batch "recreate" of a table on SQLite.
    op.add_column('clients', sa.Column('jwks_uri', sa.String(length=2048), nullable=True))
    op.add_column('clients', sa.Column('jwks_uri_added_at', sa.BigInteger(), nullable=True))


def downgrade():
    op.drop_column('clients', 'jwks_uri_added_at')
    op.drop_column('clients', 'jwks_uri')
