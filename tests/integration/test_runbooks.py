"""The "Backup and restore" and "Upgrading between versions" runbooks of docs/deployment.md, step by
step, with the commands they name (sqlite3, pg_dump, pg_restore, authserver) against live
`authserver serve` processes, on SQLite and, when configured, PostgreSQL."""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import jwt
import pytest
import requests
from click.testing import CliRunner
from flask_migrate import downgrade

from authserver import create_app
from authserver.cli import initialise, main
from authserver.config import MIGRATIONS_DIR
from authserver.extensions import db
from authserver.services.client_secrets import add_secret, delete_secret

from ..conftest import JWT_BEARER, PG_URL, SECRET_FILES, fresh_pg_database, make_tenant
from ..servers import AUTHSERVER, cli, free_port, running_server, server_env

pytestmark = pytest.mark.slow

PREVIOUS_SCHEMA = "0003"
CHECK_EXIT_SCHEMA = 12  # `authserver config check`: the schema is not this version's
CHECK_EXIT_KEY_ENCRYPTION_KEY = 13  # `authserver config check`: the key-encryption key opens no signing key


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL of a PostgreSQL database as pg_dump and pg_restore take it."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))


def run(*argv: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{argv[0]} failed: {proc.stderr[-2000:]}"
    return proc


class Deployment:
    """One host's configuration: its instance directory, its database and its environment."""

    def __init__(self, instance: Path, issuer: str, port: int, database_url: str | None, shared: dict[str, str]):
        self.instance, self.issuer, self.port, self.database_url = instance, issuer, port, database_url
        extra = dict(shared)
        if database_url:
            extra["AUTHSERVER_DATABASE_URL"] = database_url
        self.env = server_env(instance, issuer, **extra)
        self.overrides = {"instance_path": str(instance), "issuer": issuer,
                          **({"database_url": database_url} if database_url else {}),
                          **{key.removeprefix("AUTHSERVER_").lower(): value for key, value in shared.items()}}

    @property
    def sqlite_file(self) -> Path:
        return self.instance / "authserver.db"

    @contextmanager
    def app(self):
        app = create_app(self.overrides)
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()

    @contextmanager
    def serving(self, log_name: str = "server.log"):
        with running_server(self.env, self.port, workers=1, log_path=self.instance.parent / log_name) as base:
            yield Host(base, self.issuer)

    def check(self) -> subprocess.CompletedProcess:
        return subprocess.run([AUTHSERVER, "config", "check"], env=self.env, capture_output=True, text=True, timeout=60)


class Host:
    def __init__(self, base: str, issuer: str):
        self.base, self.issuer = base, issuer

    def assertion(self, tenant) -> str:
        now = int(time.time())
        return jwt.encode({"iss": tenant.client_id, "sub": tenant.account_id, "aud": self.issuer + "/oauth/token",
                           "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}, tenant.private_key,
                          algorithm="ES256", headers={"kid": tenant.kid})

    def token_response(self, tenant, secret: str | None = None, assertion: str | None = None) -> requests.Response:
        return requests.post(self.base + "/oauth/token",
                             data={"grant_type": JWT_BEARER, "assertion": assertion or self.assertion(tenant)},
                             auth=(tenant.client_id, secret or tenant.client_secret), timeout=10)

    def token(self, tenant, secret: str | None = None, assertion: str | None = None) -> str:
        response = self.token_response(tenant, secret, assertion)
        assert response.status_code == 200, response.text[:300]
        return response.json()["access_token"]

    def active(self, tenant, token: str) -> bool:
        response = requests.post(self.base + "/oauth/introspect", data={"token": token},
                                 auth=(tenant.client_id, tenant.client_secret), timeout=10)
        assert response.status_code == 200, response.text[:300]
        return response.json()["active"]

    def jwks(self) -> dict:
        return requests.get(self.base + "/oauth/jwks", timeout=10).json()


@contextmanager
def issuing_tokens(host: Host, tenant):
    """Token requests, about 20 a second, until the block ends: [(sent, finished, status, token)]."""
    results: list[tuple[float, float, int, str | None]] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            sent = time.monotonic()
            response = host.token_response(tenant)
            token = response.json().get("access_token") if response.status_code == 200 else None
            results.append((sent, time.monotonic(), response.status_code, token))
            stop.wait(0.05)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        yield results
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"] if PG_URL else ["sqlite"])
def backend(request):
    return request.param


@pytest.fixture
def databases(backend):
    """Two empty databases (the running one and the one restored into), or None, None for SQLite files."""
    if backend == "sqlite":
        yield None, None
        return
    with fresh_pg_database("authserver_runbook") as source, fresh_pg_database("authserver_runbook") as target:
        yield source, target


def shared_secrets(backend: str) -> dict[str, str]:
    """Several hosts on PostgreSQL share the three secrets through their environment (made by `authserver
    config generate`); a single SQLite host keeps the ones it generated in its instance directory."""
    if backend == "sqlite":
        return {}
    generated = CliRunner().invoke(main, ["config", "generate", "--json"])
    assert generated.exit_code == 0, generated.output
    return json.loads(generated.output)


def test_backup_while_serving_then_restore_into_a_new_instance(tmp_path, backend, databases):
    source_db, target_db = databases
    shared = shared_secrets(backend)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"  # the public URL: the restored host answers under the same one
    old = Deployment(tmp_path / "old" / "instance", issuer, port, source_db, shared)
    with old.app():
        initialise()
        tenant = make_tenant("Acme", scope="read")
        spare = add_secret(tenant.client_id)  # deleted after the backup below
    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)

    with old.serving() as host:
        before = host.token(tenant)
        # The backup, taken while tokens keep being issued.
        with issuing_tokens(host, tenant) as during:
            while not during:
                time.sleep(0.05)
            backup_started = time.monotonic()
            if backend == "sqlite":
                run("sqlite3", str(old.sqlite_file), f".backup '{backup / 'authserver.db'}'")
                assert run("sqlite3", str(backup / "authserver.db"), "PRAGMA integrity_check").stdout.strip() == "ok"
                for name in SECRET_FILES:  # generated into the instance directory: back them up too
                    shutil.copy2(old.instance / name, backup / name)
            else:
                run("pg_dump", "--format=custom", f"--file={backup / 'authserver.dump'}", libpq_url(source_db))
            time.sleep(0.3)
        assert during and all(status == 200 for _, _, status, _ in during), "serving was disturbed by the backup"
        issued_before_backup = [token for _, finished, _, token in during if finished < backup_started]
        # What happens after the backup is not in it.
        after = host.token(tenant)
        replayable = host.assertion(tenant)
        host.token(tenant, assertion=replayable)
        with old.app():
            delete_secret(tenant.client_id, spare.secret_id)
        assert host.token_response(tenant, secret=spare.client_secret).status_code == 401
        old_jwks = host.jwks()

    # Restore on a new host: a new instance directory (and, on PostgreSQL, a new database).
    new = Deployment(tmp_path / "new" / "instance", issuer, port, target_db, shared)
    if backend == "sqlite":
        new.instance.mkdir(parents=True, mode=0o700)
        shutil.copy2(backup / "authserver.db", new.sqlite_file)
        for name in SECRET_FILES:
            shutil.copy2(backup / name, new.instance / name)
    else:
        run("pg_restore", "--no-owner", "--role=postgres", "--exit-on-error", f"--dbname={libpq_url(target_db)}",
            str(backup / "authserver.dump"))
    assert new.check().returncode == 0, new.check().stderr

    with new.serving("restored.log") as host:
        assert host.jwks() == old_jwks  # the same signing keys, decrypted with the same key-encryption key
        assert host.active(tenant, before)
        assert issued_before_backup and all(host.active(tenant, token) for token in issued_before_backup[-3:])
        assert host.active(tenant, host.token(tenant))  # the client's secret authenticates
        # As the runbook warns: the token issued after the backup has no record (inactive at introspection),
        # the secret deleted after it authenticates again, and the assertion used after it can be sent again.
        assert not host.active(tenant, after)
        assert host.token_response(tenant, secret=spare.client_secret).status_code == 200
        assert host.token_response(tenant, assertion=replayable).status_code == 200

    if backend == "sqlite":
        check_what_the_key_files_are_for(tmp_path, backup, tenant, issuer)


def check_what_the_key_files_are_for(tmp_path: Path, backup: Path, tenant, issuer: str) -> None:
    """A restore with the database alone: without the key-encryption key no signing key decrypts; without
    the pepper no client secret verifies."""
    def restored(name: str, without: str) -> Deployment:
        deployment = Deployment(tmp_path / name / "instance", issuer, free_port(), None, {})
        deployment.instance.mkdir(parents=True, mode=0o700)
        shutil.copy2(backup / "authserver.db", deployment.sqlite_file)
        for secret_file in SECRET_FILES:
            if secret_file != without:
                shutil.copy2(backup / secret_file, deployment.instance / secret_file)
        return deployment

    without_kek = restored("no-kek", "key-encryption.key")
    checked = without_kek.check()
    assert checked.returncode == CHECK_EXIT_KEY_ENCRYPTION_KEY, checked.stderr

    without_pepper = restored("no-pepper", "secret-pepper.key")
    with without_pepper.app() as app:
        response = app.test_client().post("/oauth/introspect", data={"token": "anything"},
                                          auth=(tenant.client_id, tenant.client_secret))
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def schema_revision(deployment: Deployment) -> str:
    with deployment.app():
        return db.session.execute(db.text("SELECT version_num FROM alembic_version")).scalar_one()


def test_upgrade_from_the_previous_schema(tmp_path, backend, databases):
    database, _ = databases
    port = free_port()
    deployment = Deployment(tmp_path / "instance", f"http://127.0.0.1:{port}", port, database, shared_secrets(backend))
    host = Host(f"http://127.0.0.1:{port}", deployment.issuer)
    with deployment.app() as app:
        initialise()
        tenant = make_tenant("Acme", scope="read")
        issued = app.test_client().post(
            "/oauth/token",
            data={"grant_type": JWT_BEARER, "assertion": host.assertion(tenant)},
            auth=(tenant.client_id, tenant.client_secret),
        )
        assert issued.status_code == 200, issued.get_json()
        token = issued.get_json()["access_token"]
    # The database as the previous version left it, with that token and the client's secret and key in it.
    with deployment.app():
        downgrade(directory=str(MIGRATIONS_DIR), revision=PREVIOUS_SCHEMA)
    assert schema_revision(deployment) == PREVIOUS_SCHEMA

    # 1. The server is stopped (above). 2. Back up: the rollback point.
    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)
    if backend == "sqlite":
        run("sqlite3", str(deployment.sqlite_file), f".backup '{backup / 'authserver.db'}'")
        with sqlite3.connect(backup / "authserver.db") as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (PREVIOUS_SCHEMA,)
    else:
        run("pg_dump", "--format=custom", f"--file={backup / 'authserver.dump'}", libpq_url(database))
        listed = run(
            "pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(backup / "authserver.dump")
        )
        assert f"\n{PREVIOUS_SCHEMA}\n" in listed.stdout
    # 3. The new version is installed (this checkout). 4. It says the schema is not its own.
    checked = deployment.check()
    assert checked.returncode == CHECK_EXIT_SCHEMA, checked.stderr
    assert f"at {PREVIOUS_SCHEMA}" in checked.stderr and "authserver init" in checked.stderr
    # 5. Migrate, once, from one host. 6. Check.
    cli(deployment.env, "init")
    checked = deployment.check()
    assert checked.returncode == 0, checked.stderr
    assert schema_revision(deployment) != PREVIOUS_SCHEMA
    # 7. Start: what the previous version issued and stored still works.
    with deployment.serving("after.log") as host:
        assert host.active(tenant, token)
        assert host.active(tenant, host.token(tenant))


SYNC_CONNECTIONS_PER_WORKER = 3  # docs/deployment.md, "Workers, threads and database connections"
PURGER_CONNECTIONS = 2


@pytest.mark.skipif(not PG_URL, reason="needs AUTHSERVER_TEST_DATABASE_URL")
def test_postgresql_connections_per_host_stay_within_the_sizing_table(tmp_path):
    """Two sync workers under concurrent load, with the purger holding its lock: the documented ceiling."""
    import psycopg

    workers = 2
    with fresh_pg_database("authserver_runbook") as database:
        port = free_port()
        deployment = Deployment(tmp_path / "instance", f"http://127.0.0.1:{port}", port, database,
                                shared_secrets("postgresql"))
        deployment.env.update({"AUTHSERVER_PURGE_INTERVAL": "1", "AUTHSERVER_WORKER_CLASS": "sync"})
        with deployment.app():
            initialise()
            tenant = make_tenant("Acme", scope="read")
        name = urlsplit(database).path.lstrip("/")
        peak = 0
        with running_server(deployment.env, port, workers=workers, log_path=tmp_path / "server.log") as base, \
                psycopg.connect(libpq_url(PG_URL), autocommit=True) as monitor:
            host = Host(base, deployment.issuer)

            def connections() -> int:
                return monitor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[
                    0
                ]

            def client_work(_):
                token = host.token(tenant)
                assert host.active(tenant, token)

            with ThreadPoolExecutor(max_workers=6) as pool:
                futures = [pool.submit(client_work, n) for n in range(60)]
                while not all(f.done() for f in futures):
                    peak = max(peak, connections())
                    time.sleep(0.02)
                for future in futures:
                    future.result()
            time.sleep(1.5)  # the purger's first round takes its lock; the last-used times are written
            peak = max(peak, connections())
        assert workers + 1 <= peak <= workers * SYNC_CONNECTIONS_PER_WORKER + PURGER_CONNECTIONS, peak
