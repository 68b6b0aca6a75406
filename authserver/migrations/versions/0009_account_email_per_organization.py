"""Account emails unique per organization

accounts.email was unique on the whole server, so one organization could learn that an address was
used by another (409) and block it from using it. Now (org_id, email) is unique, and an index on
email serves the console's sign-in, which looks at every organization's account with the email.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _swap_unique(old: str, new: str, columns: list[str]) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(old, 'accounts', type_='unique')
        op.create_unique_constraint(new, 'accounts', columns)
        return
    _recreate_accounts_on_sqlite(old, new, columns)


def _recreate_accounts_on_sqlite(old: str, new: str, columns: list[str]) -> None:
    # SQLite drops a table-level UNIQUE only by recreating the table; with foreign keys on, dropping
    # accounts would cascade into its sessions and tokens, so they are off while it is rebuilt.
    with op.get_context().autocommit_block():
        op.execute("PRAGMA foreign_keys=OFF")
    try:
        with op.batch_alter_table('accounts', recreate='always') as batch_op:
            batch_op.drop_constraint(old, type_='unique')
            batch_op.create_unique_constraint(new, columns)
    finally:
        with op.get_context().autocommit_block():
            op.execute("PRAGMA foreign_keys=ON")


def upgrade():
    _swap_unique('uq_accounts_email', 'uq_accounts_org_id_email', ['org_id', 'email'])
    op.create_index('ix_accounts_email', 'accounts', ['email'], unique=False)


def downgrade():
    # Fails while two organizations hold the same email: which one keeps it is not the migration's choice.
    op.drop_index('ix_accounts_email', table_name='accounts')
    _swap_unique('uq_accounts_org_id_email', 'uq_accounts_email', ['email'])
