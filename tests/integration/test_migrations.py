"""The schema comes from migrations alone: they build an empty database (SQLite and PostgreSQL),
upgrade an older schema with data in it, and match the models exactly."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from authserver import create_app
from authserver.config import PROJECT_ROOT
from authserver.extensions import db

from ..conftest import PG_URL

MIGRATIONS = str(PROJECT_ROOT / "migrations")


@pytest.fixture(params=["sqlite", "postgresql"] if PG_URL else ["sqlite"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    parts = urlsplit(PG_URL)
    name = "authserver_mig_" + uuid.uuid4().hex[:10]
    admin = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _app(tmp_path, url):
    return create_app({"instance_path": str(tmp_path / "instance"), "database_url": url})


def test_migrations_build_the_models_schema_exactly(tmp_path, empty_database):
    app = _app(tmp_path, empty_database)
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        db.session.remove()
        db.engine.dispose()


def test_upgrade_keeps_the_data_of_an_older_schema(tmp_path, empty_database):
    app = _app(tmp_path, empty_database)
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="0001")
        assert "rate_limit_counters" not in inspect(db.engine).get_table_names()
        db.session.execute(text("INSERT INTO organizations (org_id, name, created_at) VALUES ('org_old', 'Old', 1)"))
        db.session.execute(text(
            "INSERT INTO clients (client_id, org_id, name, description, scope, resource_server, keys_version, created_at, updated_at) "
            "VALUES ('0123456789abcdef0123456789abcdef', 'org_old', 'Legacy', '', 'read', false, 0, 1, 1)"))
        db.session.commit()
        upgrade(directory=MIGRATIONS)
        assert "rate_limit_counters" in inspect(db.engine).get_table_names()
        assert db.session.execute(text("SELECT name FROM clients")).scalar_one() == "Legacy"
        version = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == "0002"
        db.session.remove()
        db.engine.dispose()
