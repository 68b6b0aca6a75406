"""Trusted issuers (workload identity federation)

trusted_issuers: an organization's external issuers whose signed JWTs are accepted as JWT bearer
grant assertions, with the audience they must carry and where their keys come from (jwks_uri, OIDC
discovery when both key columns are NULL, or a pasted JWK Set). trusted_issuer_rules: in position
order, the claim conditions that map an assertion to one account. trusted_issuer_clients: the
clients allowed to present the issuer's assertions. New tables only: nothing existing changes.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('trusted_issuers',
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('issuer_url', sa.String(length=512), nullable=False),
    sa.Column('audience', sa.String(length=512), nullable=False),
    sa.Column('jwks_uri', sa.String(length=2048), nullable=True),
    sa.Column('jwks', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.org_id'],
                            name=op.f('fk_trusted_issuers_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issuer_id', name=op.f('pk_trusted_issuers')),
    sa.UniqueConstraint('org_id', 'issuer_url', name='uq_trusted_issuers_org_id_issuer_url')
    )
    op.create_table('trusted_issuer_rules',
    sa.Column('rule_id', sa.String(length=40), nullable=False),
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('claims', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=True),
    sa.Column('resource', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.account_id'],
                            name=op.f('fk_trusted_issuer_rules_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['issuer_id'], ['trusted_issuers.issuer_id'],
                            name=op.f('fk_trusted_issuer_rules_issuer_id_trusted_issuers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_trusted_issuer_rules'))
    )
    op.create_index('ix_trusted_issuer_rules_issuer_id', 'trusted_issuer_rules', ['issuer_id'], unique=False)
    op.create_table('trusted_issuer_clients',
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'],
                            name=op.f('fk_trusted_issuer_clients_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['issuer_id'], ['trusted_issuers.issuer_id'],
                            name=op.f('fk_trusted_issuer_clients_issuer_id_trusted_issuers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issuer_id', 'client_id', name=op.f('pk_trusted_issuer_clients'))
    )
    op.create_index('ix_trusted_issuer_clients_client_id', 'trusted_issuer_clients', ['client_id'], unique=False)


def downgrade():
    op.drop_index('ix_trusted_issuer_clients_client_id', table_name='trusted_issuer_clients')
    op.drop_table('trusted_issuer_clients')
    op.drop_index('ix_trusted_issuer_rules_issuer_id', table_name='trusted_issuer_rules')
    op.drop_table('trusted_issuer_rules')
    op.drop_table('trusted_issuers')
