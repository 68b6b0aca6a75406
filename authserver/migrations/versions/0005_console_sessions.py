"""Server-side console sessions

console_sessions: one row per signed-in console session, found by the SHA-256 hash of the random
session id the browser's cookie carries (the id itself is never stored). Deleting a row ends the
session everywhere. Sessions signed in before this revision were signed cookies only: they carry no
session id, so every admin signs in once more after the upgrade.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # A plain CREATE TABLE and CREATE INDEX on every database: no batch "recreate" of a table on SQLite.
    op.create_table('console_sessions',
    sa.Column('session_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.account_id'],
                            name=op.f('fk_console_sessions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.org_id'],
                            name=op.f('fk_console_sessions_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_hash', name=op.f('pk_console_sessions'))
    )
    op.create_index('ix_console_sessions_account_id', 'console_sessions', ['account_id'], unique=False)
    op.create_index('ix_console_sessions_expires_at', 'console_sessions', ['expires_at'], unique=False)


def downgrade():
    op.drop_index('ix_console_sessions_expires_at', table_name='console_sessions')
    op.drop_index('ix_console_sessions_account_id', table_name='console_sessions')
    op.drop_table('console_sessions')
