"""The schema comes from migrations alone: they build an empty database (SQLite and PostgreSQL),
upgrade an older schema with data in it, and match the models exactly."""
from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from authserver import create_app
from authserver.config import MIGRATIONS_DIR
from authserver.extensions import db

from ..conftest import PG_URL, fresh_pg_database

MIGRATIONS = str(MIGRATIONS_DIR)


@pytest.fixture(params=["sqlite", "postgresql"] if PG_URL else ["sqlite"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_pg_database("authserver_mig") as url:
        yield url


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
        db.session.execute(
            text(
                "INSERT INTO clients (client_id, org_id, name, description, scope, resource_server, keys_version, "
                "created_at, updated_at) "
                "VALUES ('0123456789abcdef0123456789abcdef', 'org_old', 'Legacy', '', 'read', false, 0, 1, 1)"
            )
        )
        db.session.commit()
        upgrade(directory=MIGRATIONS)
        assert "rate_limit_counters" in inspect(db.engine).get_table_names()
        assert db.session.execute(text("SELECT name FROM clients")).scalar_one() == "Legacy"
        version = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == ScriptDirectory(MIGRATIONS).get_current_head()
        db.session.remove()
        db.engine.dispose()


def test_upgrade_to_apis_keeps_former_clients_working(tmp_path, empty_database):
    """SPEC §9 upgrade path: a database populated at 0002 (client scopes, a resource_server client)
    upgrades to the APIs model; the old client still gets its old scopes (aud: AUTHSERVER_AUDIENCE),
    the management API with `manage`, and the old resource server still introspects."""
    import json
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from authserver.crypto.client_secrets import hash_client_secret
    from authserver.crypto.keys import parse_public_key
    from authserver.services.signing_keys import ensure_signing_key

    from ..conftest import ISSUER, JWT_BEARER, MANAGEMENT_API, TOKEN_ENDPOINT, basic, public_pem

    app = create_app({"instance_path": str(tmp_path / "instance"), "database_url": empty_database, "issuer": ISSUER})
    settings = app.extensions["authserver.settings"]
    legacy, rs = "a" * 32, "b" * 32
    secrets_ = {legacy: "as_legacy-client-secret-0123456789abcdef", rs: "as_resource-server-secret-0123456789abcd"}
    key = ec.generate_private_key(ec.SECP256R1())
    parsed = parse_public_key(public_pem(key), kid="old-key")
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="0002")
        db.session.execute(
            text("INSERT INTO organizations (org_id, name, created_at) VALUES ('org_a', 'A', 1), ('org_b', 'B', 1)")
        )
        db.session.execute(text("INSERT INTO accounts (account_id, org_id, name, kind, is_admin, created_at) "
                                "VALUES ('acc_a', 'org_a', 'worker', 'service', false, 1)"))
        for client_id, org, scope, flag in ((legacy, "org_a", "read write manage", False), (rs, "org_b", "", True)):
            db.session.execute(text(
                "INSERT INTO clients (client_id, org_id, name, description, scope, resource_server, keys_version, "
                "created_at, updated_at) VALUES (:c, :o, 'Old', '', :s, :f, 1, 1, 1)"),
                {"c": client_id, "o": org, "s": scope, "f": flag})
            db.session.execute(text("INSERT INTO client_secrets (secret_id, client_id, secret_hash, created_at) "
                                    "VALUES (:i, :c, :h, 1)"),
                               {"i": "sec_" + client_id[:8], "c": client_id,
                                "h": hash_client_secret(secrets_[client_id], settings.secret_pepper)})
        db.session.execute(text("INSERT INTO client_keys (client_id, kid, kty, key_type, public_jwk, created_at) "
                                "VALUES (:c, 'old-key', :kty, :t, :j, 1)"),
                           {"c": legacy, "kty": parsed.kty, "t": parsed.key_type, "j": json.dumps(parsed.jwk)})
        db.session.commit()

        upgrade(directory=MIGRATIONS)
        ensure_signing_key()  # the models are the latest schema's
        grants = db.session.execute(text("SELECT a.identifier, g.scope, g.is_default FROM client_grants g "
                                         "JOIN apis a ON a.api_id = g.api_id WHERE g.client_id = :c "
                                         "ORDER BY a.identifier"), {"c": legacy}).all()
        assert [tuple(g) for g in grants] == [(ISSUER, "manage read write", True), (MANAGEMENT_API, "manage", False)]
        bound = db.session.execute(text("SELECT a.builtin FROM api_clients b JOIN apis a ON a.api_id = b.api_id "
                                        "WHERE b.client_id = :c"), {"c": rs}).scalars().all()
        assert bound == ["default"]
        columns = {c["name"] for c in inspect(db.engine).get_columns("clients")}
        assert "scope" not in columns and "resource_server" not in columns

        http = app.test_client()

        def token(**form):
            now = int(time.time())
            assertion = jwt.encode({"iss": legacy, "sub": "acc_a", "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 60,
                                    "jti": uuid.uuid4().hex}, key, algorithm="ES256", headers={"kid": "old-key"})
            response = http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": assertion, **form},
                                 headers=basic(legacy, secrets_[legacy]))
            assert response.status_code == 200, response.get_json()
            return response.get_json()

        old_style = token()  # no resource: the default API, with the client's former scopes
        assert old_style["scope"] == "manage read write"
        claims = jwt.decode(old_style["access_token"], options={"verify_signature": False})
        assert claims["aud"] == ISSUER and claims["org_id"] == "org_a"
        answer = http.post("/oauth/introspect", data={"token": old_style["access_token"]},
                           headers=basic(rs, secrets_[rs])).get_json()
        assert answer["active"] is True and answer["aud"] == ISSUER and answer["org_id"] == "org_a"
        management = token(resource=MANAGEMENT_API)
        assert management["scope"] == "manage"
        db.session.remove()
        db.engine.dispose()


def test_upgrade_to_signing_key_lifecycle_keeps_the_rotation_schedule(tmp_path, empty_database):
    """0004: each existing key signs from when the workers let it (its creation plus the activation
    delay; the first key from its creation), so a rotation pending at the upgrade stays pending and
    the key signing before it signs after it; token records issued before carry no kid."""
    from authserver import clock
    from authserver.crypto.signing import encrypt_private_key, generate_signing_key, public_jwk_json
    from authserver.services.signing_keys import list_signing_keys

    app = _app(tmp_path, empty_database)
    settings = app.extensions["authserver.settings"]
    delay = settings.signing_key_activation_delay
    now = clock.now()
    old, pending = generate_signing_key("RS256"), generate_signing_key("RS256")
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="0003")
        for pair, created, retired in ((old, now - 5000, now - 30 + delay), (pending, now - 30, None)):
            db.session.execute(text(
                "INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, created_at, retired_at) "
                "VALUES (:kid, 'RS256', :jwk, :enc, :created, :retired)"),
                {"kid": pair.kid, "jwk": public_jwk_json(pair), "created": created, "retired": retired,
                 "enc": encrypt_private_key(pair.private_key, settings.key_encryption_key)})
        db.session.execute(text("INSERT INTO organizations (org_id, name, created_at) VALUES ('org_a', 'A', 1)"))
        db.session.execute(text("INSERT INTO accounts (account_id, org_id, name, kind, is_admin, created_at) "
                                "VALUES ('acc_a', 'org_a', 'worker', 'service', false, 1)"))
        db.session.execute(text("INSERT INTO clients (client_id, org_id, name, description, keys_version, created_at, "
                                "updated_at) VALUES (:c, 'org_a', 'Old', '', 0, 1, 1)"), {"c": "c" * 32})
        db.session.execute(text(
            "INSERT INTO access_tokens (jti, client_id, account_id, secret_id, scope, audience, issued_at, expires_at) "
            "VALUES ('old-jti', :c, 'acc_a', NULL, 'read', 'https://api.example', :now, :exp)"),
            {"c": "c" * 32, "now": now, "exp": now + 600})
        db.session.commit()

        upgrade(directory=MIGRATIONS)
        rows = {r.kid: r for r in db.session.execute(text(
            "SELECT kid, created_at, activates_at, retired_at, withdrawn_at FROM signing_keys")).all()}
        assert rows[old.kid].activates_at == now - 5000  # the first key signed from its creation
        assert rows[pending.kid].activates_at == now - 30 + delay == rows[old.kid].retired_at
        assert rows[old.kid].withdrawn_at is None and rows[pending.kid].withdrawn_at is None
        assert db.session.execute(text("SELECT kid FROM access_tokens WHERE jti = 'old-jti'")).scalar_one() is None
        assert {e["kid"]: e["state"] for e in list_signing_keys()} == {old.kid: "signing", pending.kid: "pending"}
        keyring = app.extensions["authserver.services"].keyring
        assert keyring.signing_key().kid == old.kid
        clock.shift(delay)
        try:
            assert {e["kid"]: e["state"] for e in list_signing_keys()} == {old.kid: "retired", pending.kid: "signing"}
            assert keyring.signing_key().kid == pending.kid
        finally:
            clock.reset()
        db.session.remove()
        db.engine.dispose()


def test_the_schema_version_is_read_without_alembic_as_alembic_reads_it(tmp_path, empty_database):
    """`serve`, `init` and `config check` compare the newest migration's revision with the database's without
    importing Alembic: both values are Alembic's own, on an empty, an older and a current database."""
    from authserver import schema

    assert schema._chain_head() is not None  # the files are read, not handed to Alembic
    assert schema.head_revision() == ScriptDirectory(MIGRATIONS).get_current_head()
    app = _app(tmp_path, empty_database)
    with app.app_context():
        seen = []
        for revision in (None, "0001", "0007", "head"):
            if revision is not None:
                upgrade(directory=MIGRATIONS, revision=revision)
            with db.engine.connect() as conn:
                seen.append((schema.current_revision(conn), MigrationContext.configure(conn).get_current_revision(),
                             schema.is_current(conn)))
        head = schema.head_revision()
        assert seen == [(None, None, False), ("0001", "0001", False), ("0007", "0007", False), (head, head, True)]
        # Two revisions in the table (a branched history): neither is "the" revision, and it is not current.
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('zzzz')"))
            assert schema.current_revision(conn) == f"{head}, zzzz" and not schema.is_current(conn)
            conn.execute(text("DELETE FROM alembic_version WHERE version_num = 'zzzz'"))
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("files", [
    {"a.py": "revision = 'a'\ndown_revision = None\n", "b.py": "revision = 'b'\ndown_revision = 'a'\n",
     "c.py": "revision = 'c'\ndown_revision = 'a'\n"},  # a branch: two heads
    {"a.py": "revision = 'a'\ndown_revision = None\n", "b.py": "revision = 'b'\ndown_revision = ('a', 'x')\n"},
    {"a.py": "revision = 'a'\ndown_revision = None\n", "b.py": "revision = make_id()\ndown_revision = 'a'\n"},
    {"a.py": "revision = 'a'\ndown_revision = None\n", "b.py": "revision = 'b'\ndown_revision = 'gone'\n"},
], ids=["branch", "merge", "computed", "missing-parent"])
def test_migration_files_that_are_not_a_simple_chain_are_left_to_alembic(tmp_path, monkeypatch, files):
    from authserver import schema

    (tmp_path / "versions").mkdir()
    for name, text_ in files.items():
        (tmp_path / "versions" / name).write_text(text_)
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", tmp_path)
    assert schema._chain_head() is None


def test_a_merged_history_is_read_by_alembic(tmp_path, monkeypatch):
    """When the files are not a simple chain, the head is Alembic's: here a merge of two branches."""
    from authserver import schema

    (tmp_path / "versions").mkdir()
    for name, down in (("a", None), ("b", "'a'"), ("c", "'a'"), ("d", "('b', 'c')")):
        (tmp_path / "versions" / f"{name}.py").write_text(f"revision = '{name}'\ndown_revision = {down}\n"
                                                          "branch_labels = None\ndepends_on = None\n")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", tmp_path)
    assert schema._chain_head() is None
    assert schema.head_revision.__wrapped__() == "d"  # uncached: the package's own head stays cached
