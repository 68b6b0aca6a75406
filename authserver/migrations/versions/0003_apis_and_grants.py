"""APIs, their scopes, API access (grants) and the APIs' own clients

Existing deployments keep working: a platform API `default` with the identifier AUTHSERVER_AUDIENCE
(the `aud` every token carried until now) takes every former client scope; every client is granted
its former scopes there, as its default; every former `resource_server` client introspects for it.
The management API becomes the platform API `{issuer}/api/v1` with the scope `manage`, granted to
the clients that held `manage`.

Revision ID: 0003
Revises: 0002
"""
import secrets
import time

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

MANAGE = "manage"


def _tables():
    meta = sa.MetaData()
    apis = sa.Table("apis", meta, sa.Column("api_id"), sa.Column("org_id"), sa.Column("name"), sa.Column("identifier"),
                    sa.Column("open_to_all"), sa.Column("builtin"), sa.Column("created_at"), sa.Column("updated_at"))
    scopes = sa.Table("api_scopes", meta, sa.Column("api_id"), sa.Column("name"), sa.Column("description"))
    grants = sa.Table("client_grants", meta, sa.Column("client_id"), sa.Column("api_id"), sa.Column("scope"),
                      sa.Column("is_default"), sa.Column("created_at"), sa.Column("updated_at"))
    bound = sa.Table("api_clients", meta, sa.Column("api_id"), sa.Column("client_id"), sa.Column("created_at"))
    clients = sa.Table("clients", meta, sa.Column("client_id"), sa.Column("scope"), sa.Column("resource_server"))
    return apis, scopes, grants, bound, clients


def upgrade():
    op.create_table('apis',
    sa.Column('api_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('identifier', sa.String(length=255), nullable=False),
    sa.Column('open_to_all', sa.Boolean(), nullable=False),
    sa.Column('builtin', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.org_id'], name=op.f('fk_apis_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_id', name=op.f('pk_apis')),
    sa.UniqueConstraint('identifier', name='uq_apis_identifier')
    )
    with op.batch_alter_table('apis', schema=None) as batch_op:
        batch_op.create_index('ix_apis_org_id', ['org_id'], unique=False)

    op.create_table('api_scopes',
    sa.Column('api_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['api_id'], ['apis.api_id'], name=op.f('fk_api_scopes_api_id_apis'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_id', 'name', name='pk_api_scopes')
    )
    op.create_table('api_org_access',
    sa.Column('api_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['api_id'], ['apis.api_id'], name=op.f('fk_api_org_access_api_id_apis'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.org_id'], name=op.f('fk_api_org_access_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_id', 'org_id', name='pk_api_org_access')
    )
    op.create_table('api_clients',
    sa.Column('api_id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['api_id'], ['apis.api_id'], name=op.f('fk_api_clients_api_id_apis'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_api_clients_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_id', 'client_id', name='pk_api_clients')
    )
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.create_index('ix_api_clients_client_id', ['client_id'], unique=False)

    op.create_table('client_grants',
    sa.Column('client_id', sa.String(length=32), nullable=False),
    sa.Column('api_id', sa.String(length=40), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['api_id'], ['apis.api_id'], name=op.f('fk_client_grants_api_id_apis'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_client_grants_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('client_id', 'api_id', name='pk_client_grants')
    )
    with op.batch_alter_table('client_grants', schema=None) as batch_op:
        batch_op.create_index('ix_client_grants_api_id', ['api_id'], unique=False)

    # Plain ALTER TABLE on every database: a batch "recreate" of clients on SQLite would drop the
    # table, and with foreign keys on that cascades into secrets, keys, tokens and grants.
    op.add_column('clients', sa.Column('access_version', sa.Integer(), nullable=False, server_default='0'))

    _move_data()

    op.drop_column('clients', 'resource_server')
    op.drop_column('clients', 'scope')


def _move_data():
    settings = current_app.extensions["authserver.settings"]
    apis, scopes, grants, bound, clients = _tables()
    conn = op.get_bind()
    now = int(time.time())
    rows = conn.execute(sa.select(clients.c.client_id, clients.c.scope, clients.c.resource_server)).all()
    former = {row.client_id: sorted(set((row.scope or "").split())) for row in rows}

    default_id = "api_" + secrets.token_hex(10)
    management_id = "api_" + secrets.token_hex(10)
    default_scopes = set(settings.scopes_supported) - {MANAGE}
    for names in former.values():
        default_scopes.update(names)
    conn.execute(apis.insert(), [
        {"api_id": management_id, "org_id": None, "name": "Management API", "identifier": settings.issuer + "/api/v1",
         "open_to_all": True, "builtin": "management", "created_at": now, "updated_at": now},
        {"api_id": default_id, "org_id": None, "name": "default", "identifier": settings.audience,
         "open_to_all": True, "builtin": "default", "created_at": now, "updated_at": now},
    ])
    conn.execute(scopes.insert(), [{"api_id": management_id, "name": MANAGE,
                                    "description": "Manage the organization through the management API."}])
    if default_scopes:
        conn.execute(scopes.insert(), [{"api_id": default_id, "name": name, "description": ""}
                                       for name in sorted(default_scopes)])
    grant_rows, bound_rows = [], []
    for row in rows:
        grant_rows.append({"client_id": row.client_id, "api_id": default_id, "scope": " ".join(former[row.client_id]),
                           "is_default": True, "created_at": now, "updated_at": now})
        if MANAGE in former[row.client_id]:
            grant_rows.append({"client_id": row.client_id, "api_id": management_id, "scope": MANAGE,
                               "is_default": False, "created_at": now, "updated_at": now})
        if row.resource_server:
            bound_rows.append({"api_id": default_id, "client_id": row.client_id, "created_at": now})
    if grant_rows:
        conn.execute(grants.insert(), grant_rows)
    if bound_rows:
        conn.execute(bound.insert(), bound_rows)


def downgrade():
    op.add_column('clients', sa.Column('scope', sa.Text(), nullable=False, server_default=''))
    op.add_column('clients', sa.Column('resource_server', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.drop_column('clients', 'access_version')
    with op.batch_alter_table('client_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_client_grants_api_id')
    op.drop_table('client_grants')
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_index('ix_api_clients_client_id')
    op.drop_table('api_clients')
    op.drop_table('api_org_access')
    op.drop_table('api_scopes')
    with op.batch_alter_table('apis', schema=None) as batch_op:
        batch_op.drop_index('ix_apis_org_id')
    op.drop_table('apis')
