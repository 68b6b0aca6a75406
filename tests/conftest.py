"""Shared fixtures: a real app on a real database (a SQLite file per test, or PostgreSQL when
AUTHSERVER_TEST_DATABASE_URL is set and the test asks for it), and a ready organization."""
from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authserver import clock, create_app
from authserver.cli import initialise
from authserver.extensions import db

ISSUER = "http://localhost"
TOKEN_ENDPOINT = ISSUER + "/oauth/token"
MANAGEMENT_API = ISSUER + "/api/v1"  # the management API's identifier (SPEC §9)
DEFAULT_API = ISSUER  # the `default` platform API: AUTHSERVER_AUDIENCE, which defaults to the issuer
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SECRET_FILES = ("session.key", "secret-pepper.key", "key-encryption.key")
REDIS_URL = os.environ.get("AUTHSERVER_TEST_REDIS_URL", "")


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets a database of its own beside the configured one (created
    here, dropped when the session ends), so workers never empty each other's tables. Its commits do not
    wait for the log to reach the disk (`synchronous_commit = off`, this database only): a test's data
    need not outlive a crash of PostgreSQL itself, and the suite's thousands of commits run about 10 %
    faster. The server's own settings are unchanged; tests that stop or kill connections lose nothing by it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/')}_{worker}"
    admin = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


CONFIGURED_PG_URL = os.environ.get("AUTHSERVER_TEST_DATABASE_URL", "")


@contextlib.contextmanager
def fresh_pg_database(prefix: str):
    """A PostgreSQL database of its own beside the configured one, dropped afterwards: its URL."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(PG_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
PG_URL = _worker_database(CONFIGURED_PG_URL)


@pytest.fixture(scope="session", autouse=True)
def _drop_worker_database():
    yield
    if PG_URL and PG_URL != CONFIGURED_PG_URL:
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        configured = urlsplit(CONFIGURED_PG_URL)
        name = urlsplit(PG_URL).path.lstrip("/")
        admin = urlunsplit(("postgresql", configured.netloc, configured.path, "", ""))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Markers (pyproject.toml): pg and redis for tests that need those servers, browser for Chromium, slow for
# tests that start `authserver serve` processes. `-m "not slow and not browser"` is the quick loop.
_SLOW_FILES = {"test_live_gunicorn.py", "test_readme_tutorial.py", "test_graceful_shutdown.py",
               "test_purger_lifecycle.py", "test_two_hosts.py", "test_cli_operators.py", "test_live_authserver.py",
               "test_signing_key_runbook.py", "test_wheel.py", "test_slow_clients.py",
               "test_docs_token_howto.py", "test_config_check.py", "test_federation_docs.py",
               "test_worker_kill.py", "test_runbooks.py", "test_deploy_files.py"}
# Not slow by the marker's meaning, but with tests of 10-30 s each (Hypothesis and schemathesis sweeps,
# `authserver` processes): scheduled right after the slow ones.
_LONG_FILES = {"test_api_openapi.py", "test_no_server_errors.py", "test_cli.py", "test_cli_apis.py"}
_REDIS_FILES = {"test_redis_and_limits.py", "test_two_hosts.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
        if name in _SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        if name in _REDIS_FILES or "redis" in item.name:
            item.add_marker(pytest.mark.redis)
        needs_pg = any(
            "AUTHSERVER_TEST_DATABASE_URL" in str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif")
        )
        if "postgresql" in item.name or needs_pg:
            item.add_marker(pytest.mark.pg)
    # The tests that start processes or a browser (up to a minute each) first, then the long ones, so that
    # under xdist none of them starts last and leaves the other workers idle meanwhile (the Makefile's
    # --dist worksteal then shares out the rest); the order within each group is unchanged.
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1 if item.path.name in _LONG_FILES else 2)


def _backends():
    return ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An instance directory migrated once; each test copies it."""
    instance = tmp_path_factory.mktemp("template-instance")
    app = create_app({"instance_path": str(instance), "issuer": ISSUER})
    with app.app_context():
        initialise()
        db.session.remove()
        db.engine.dispose()
    return instance


@pytest.fixture(scope="session")
def pg_template_ready(tmp_path_factory):
    """Migrate the PostgreSQL test database once per session (tests then empty its tables)."""
    if not PG_URL:
        return None
    instance = tmp_path_factory.mktemp("pg-instance")
    app = create_app({"instance_path": str(instance), "issuer": ISSUER, "database_url": PG_URL})
    with app.app_context():
        # Start from an empty schema: a database left by an earlier run holds a signing key
        # encrypted with that run's key-encryption key.
        from sqlalchemy import text

        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        initialise()
        # The rows `authserver init` leaves (the platform's own APIs, their scopes and clients), copied aside
        # once: each test's database is emptied and gets these rows back in one round trip.
        _PG_INIT_ROWS.clear()
        db.session.execute(text(f"DROP SCHEMA IF EXISTS {_PG_INIT_SCHEMA} CASCADE; CREATE SCHEMA {_PG_INIT_SCHEMA}"))
        for name in _pg_emptied_tables()[::-1]:  # parents first, as they are inserted back
            if db.session.execute(text(f"SELECT EXISTS (SELECT 1 FROM {name})")).scalar():
                db.session.execute(text(f"CREATE TABLE {_PG_INIT_SCHEMA}.{name} AS SELECT * FROM {name}"))
                _PG_INIT_ROWS.append(name)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return instance


_PG_INIT_SCHEMA = "test_init_rows"
_PG_INIT_ROWS: list[str] = []  # the tables `authserver init` put rows in, parents first


def _pg_emptied_tables() -> list[str]:
    """Every table but the signing key's (it stays), children first."""
    return [table.name for table in reversed(db.metadata.sorted_tables) if table.name != "signing_keys"]


def _empty_pg_tables(app):
    from sqlalchemy import text

    with app.app_context():
        # DELETE beats TRUNCATE on tables this small; children first, the signing key stays; then the rows
        # `authserver init` left, copied back. One round trip for all of it (a multi-statement string without
        # parameters): 10 ms of CPU per test instead of 15 when the platform's APIs were made again.
        statements = [f"DELETE FROM {name}" for name in _pg_emptied_tables()]
        statements += [f"INSERT INTO {name} SELECT * FROM {_PG_INIT_SCHEMA}.{name}" for name in _PG_INIT_ROWS]
        db.session.execute(text("; ".join(statements)))
        db.session.commit()


@pytest.fixture(params=_backends())
def backend(request):
    return request.param


def make_app(tmp_path: Path, template: Path, backend: str = "sqlite", pg_instance: Path | None = None, **overrides):
    instance = tmp_path / "instance"
    if backend == "sqlite":
        shutil.copytree(template, instance)
    else:
        shutil.copytree(pg_instance, instance)
        overrides.setdefault("database_url", PG_URL)
    settings = {"instance_path": str(instance), "issuer": ISSUER, **overrides}
    app = create_app(settings)
    app.config["TESTING"] = True
    if backend == "postgresql":
        _empty_pg_tables(app)
    return app


@pytest.fixture
def app_settings() -> dict:
    """Settings the test app is made with besides the suite's (a test module overrides this fixture)."""
    return {}


@contextlib.contextmanager
def in_app_context(app):
    """The test app with its context pushed; afterwards its connections closed and the clock reset."""
    ctx = app.app_context()
    ctx.push()
    try:
        yield app
    finally:
        db.session.remove()
        ctx.pop()
        with app.app_context():
            db.engine.dispose()
        clock.reset()


@pytest.fixture
def app(tmp_path, sqlite_template, pg_template_ready, backend, app_settings):
    with in_app_context(make_app(tmp_path, sqlite_template, backend, pg_template_ready, **app_settings)) as app:
        yield app


@pytest.fixture
def http(app):
    return app.test_client()


def basic(client_id: str, secret: str) -> dict:
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def private_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Tenant:
    """An organization with a service account and a client holding one secret and one EC key."""

    org_id: str
    account_id: str
    client_id: str
    secret_id: str
    client_secret: str
    kid: str
    private_key: object
    alg: str = "ES256"
    extra: dict = field(default_factory=dict)

    def assertion(self, *, key=None, alg=None, headers=None, drop=(), **claims) -> str:
        now = int(time.time())
        body = {"iss": self.client_id, "sub": self.account_id, "aud": TOKEN_ENDPOINT,
                "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
        body.update(claims)
        for name in drop:
            body.pop(name, None)
        hdr = {"kid": self.kid}
        if headers is not None:
            hdr = headers
        return jwt.encode(body, key if key is not None else self.private_key, algorithm=alg or self.alg, headers=hdr)

    def auth(self) -> dict:
        return basic(self.client_id, self.client_secret)

    def token_form(self, assertion: str | None = None, **extra) -> dict:
        form = {"grant_type": JWT_BEARER, "assertion": assertion if assertion is not None else self.assertion()}
        form.update(extra)
        return form


@contextlib.contextmanager
def one_transaction():
    """For fixtures that make their data through several services: each service's COMMIT becomes a flush,
    and one COMMIT ends the block. The same rows and audit events are stored, in one transaction instead of
    one per call (on PostgreSQL a round trip each, and the ORM reloads what each commit expired): a tenant
    in 4 ms instead of 9 on SQLite, 11 instead of 21 on PostgreSQL. Nothing in the block may make a request
    (another session would not see the rows, or wait for SQLite's write lock). Nested blocks join the
    outermost; an error rolls the whole block back."""
    from authserver.services.app_services import app_services

    if "commit" in vars(db.session):  # inside another block already
        yield
        return
    # Last-used times pending from earlier requests are written first, on a connection of their own (listing
    # secrets writes them): inside the block that connection would wait for this one's SQLite write lock.
    app_services().last_used.flush()
    db.session.commit = db.session.flush
    try:
        yield
    except BaseException:
        del db.session.commit
        db.session.rollback()
        raise
    del db.session.commit
    db.session.commit()


def make_tenant(name: str = "Acme", scope: str = "read write", key=None, kid: str = "key-1") -> Tenant:
    from authserver.services.accounts import create_account
    from authserver.services.client_keys import add_key
    from authserver.services.client_secrets import add_secret
    from authserver.services.clients import register_client
    from authserver.services.organizations import create_organization

    key = key or ec.generate_private_key(ec.SECP256R1())
    with one_transaction():
        org = create_organization(name)
        account = create_account(org.org_id, f"{name} worker", "service")
        client = register_client(org.org_id, f"{name} backend")
        grant_scopes(client.client_id, scope)
        new_secret = add_secret(client.client_id)
        add_key(client.client_id, public_pem(key), kid=kid)
        alg = (
            "ES256"
            if isinstance(key, ec.EllipticCurvePrivateKey)
            else ("EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "RS256")
        )
        # read before the COMMIT, which expires the objects (reading them after it reloads each one)
        return Tenant(org.org_id, account.account_id, client.client_id, new_secret.secret_id,
                      new_secret.client_secret, kid, key, alg)


def grant_scopes(client_id: str, scope: str) -> None:
    """Give a client the `default` platform API with these scopes as its default API (defining the scopes
    there when missing), and the management API when `manage` is among them."""
    from authserver.services.apis import (
        BUILTIN_DEFAULT,
        BUILTIN_MANAGEMENT,
        MANAGE_SCOPE,
        add_scope,
        builtin_api,
        grant_client,
        scopes_of,
    )

    names = [n for n in scope.split() if n != MANAGE_SCOPE]
    default_api = builtin_api(BUILTIN_DEFAULT)
    defined = {s.name for s in scopes_of(default_api)}
    for name in names:
        if name not in defined:
            add_scope(default_api.api_id, name)
            defined.add(name)
    grant_client(client_id, default_api.api_id, names, default=True)
    if MANAGE_SCOPE in scope.split():
        grant_client(client_id, builtin_api(BUILTIN_MANAGEMENT).api_id, MANAGE_SCOPE, default=False)


@pytest.fixture
def tenant(app) -> Tenant:
    return make_tenant()


@pytest.fixture
def other_tenant(app) -> Tenant:
    return make_tenant("Globex")


@pytest.fixture(scope="session")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def get_token(http, tenant: Tenant, **form) -> dict:
    response = http.post("/oauth/token", data=tenant.token_form(**form), headers=tenant.auth())
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def random_secret() -> str:
    return "as_" + secrets.token_urlsafe(32)


# --- developer console ------------------------------------------------------------------------

@pytest.fixture
def console_admin(app):
    """An organization ("Acme") with an admin user who can sign in to the console."""
    from .console_support import make_admin

    return make_admin()


@pytest.fixture
def console(app, console_admin):
    """A test client signed in to the console as `console_admin`; it submits the forms the pages render."""
    from .console_support import signed_in

    return signed_in(app, console_admin)


# --- no secret in any log line: every `authserver` record and every live server's output -------------

from .log_leaks import CHECKER as _LOG_LEAKS  # noqa: E402


def _share_compiled_sql() -> None:
    """The test applications of a process share SQLAlchemy's compiled statements, per dialect and engine options.

    SQLAlchemy compiles each statement once per engine (its compiled cache is keyed by the engine's dialect
    object); each test makes an application, so an engine, and so compiled every statement it ran again: a
    tenth of a test worker's CPU. A new engine gets the dialect object and the compiled cache of the first
    engine made with the same dialect class and options, once that one has connected (initialised its
    dialect from the server). The SQL sent is the same: only where its compiled form comes from changes.
    Flask-SQLAlchemy's engine factory is the hook (`_make_engine`, the one place its engines are made)."""
    from authserver.extensions import db

    make_engine = db._make_engine
    shared: dict[tuple, tuple] = {}

    def make_sharing_engine(bind_key, options, app):
        engine = make_engine(bind_key, options, app)
        key = (type(engine.dialect), engine.url.drivername, repr(sorted((k, repr(v)) for k, v in options.items()
                                                                         if k != "url")))
        first = shared.setdefault(key, (engine.dialect, engine._compiled_cache))
        dialect, cache = first
        if dialect is not engine.dialect and dialect.server_version_info is not None and cache is not None:
            engine.dialect = dialect
            engine.pool._dialect = dialect
            engine._compiled_cache = cache
        return engine

    db._make_engine = make_sharing_engine


PRODUCTION_PASSWORD_HASHER = None  # the service's own hasher, kept for the test that checks its cost


def _cheap_password_hashing() -> None:
    """Passwords are hashed and verified with argon2id at its lowest cost in the test process, as Django
    advises for test suites: the service's hasher (RFC 9106's low-memory parameters: 64 MiB, three passes,
    four lanes) takes a fifth of a second of both cores per hash or sign-in, which made password checks a
    fifteenth of the suite's CPU. The same code paths run (hash, verify, the equaliser for unknown emails;
    a hash records its own parameters); tests/unit/test_password_cost.py checks the service's parameters,
    and servers started as processes keep them."""
    from argon2 import PasswordHasher

    from authserver.services import accounts

    global PRODUCTION_PASSWORD_HASHER
    PRODUCTION_PASSWORD_HASHER = accounts._password_hasher
    accounts._password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def pytest_configure(config):
    _LOG_LEAKS.install()
    _share_compiled_sql()
    _cheap_password_hashing()
    # The cyclic garbage collector, tuned for a test process: what was imported before the first test is
    # never scanned again (freeze), and collections run every 20,000 allocations instead of every 700.
    # Each test makes and drops an application (thousands of objects in cycles): with the defaults, the
    # collector took a seventh of the suite's CPU (the same tests: 37.6 -> 32.0 s of CPU).
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


@pytest.fixture(autouse=True)
def _no_secret_in_log_lines(request):
    _LOG_LEAKS.current_test = request.node.nodeid
    yield
    _LOG_LEAKS.current_test = "(outside any test)"
    leaks = _LOG_LEAKS.take(request.node.nodeid)
    if leaks:
        pytest.fail("a log line held a secret:\n" + "\n".join(leaks), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    leaks = _LOG_LEAKS.take()
    if leaks:
        session.config.get_terminal_writer().line("a log line held a secret:\n" + "\n".join(leaks), red=True)
        session.exitstatus = 1
