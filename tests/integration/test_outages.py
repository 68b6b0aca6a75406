"""Database and Redis faults, caused for real: backends terminated between and inside requests, a
database that cannot be reached. The client gets a token or a 503 it can retry, never a 500, and
an assertion that got nothing can be sent again."""
from __future__ import annotations

import logging

import psycopg
import pytest
import redis
from sqlalchemy import func, select, text

from authserver.extensions import db
from authserver.models import AccessToken, UsedAssertion

from ..conftest import PG_URL, make_app, make_tenant
from .helpers import assert_oauth_error
from .test_redis_and_limits import private_redis

pg_only = pytest.mark.skipif(not PG_URL, reason="needs AUTHSERVER_TEST_DATABASE_URL (CI sets it)")


def _admin_dsn() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://")


def terminate_other_backends() -> int:
    """pg_terminate_backend for every other session of the test database: a restart as clients see it."""
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]


@pytest.fixture
def pg_app(tmp_path, sqlite_template, pg_template_ready):
    # No app context stays pushed: each request gets its own, as under gunicorn, so the hot path's
    # connections go back to their idle list between requests.
    app = make_app(tmp_path, sqlite_template, "postgresql", pg_template_ready)
    yield app
    with app.app_context():
        db.engine.dispose()


def _count(app, model) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(model))
        finally:
            db.session.remove()


def _tenant(app):
    with app.app_context():
        try:
            return make_tenant()
        finally:
            db.session.remove()


@pg_only
def test_no_request_fails_after_the_database_drops_every_connection(pg_app):
    http = pg_app.test_client()
    tenant = _tenant(pg_app)
    first = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
    assert first.status_code == 200
    for _ in range(2):
        assert terminate_other_backends() >= 1
        token = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
        assert token.status_code == 200, token.get_json()
        answer = http.post("/oauth/introspect", data={"token": first.get_json()["access_token"]}, headers=tenant.auth())
        assert answer.status_code == 200 and answer.get_json()["active"] is True
    assert _count(pg_app, AccessToken) == 3


KILL_ON_TOKEN_INSERT = """
CREATE OR REPLACE FUNCTION authserver_test_die() RETURNS trigger AS $$
BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER authserver_test_die BEFORE INSERT ON access_tokens FOR EACH ROW EXECUTE FUNCTION authserver_test_die();
"""
DROP_KILLER = (
    "DROP TRIGGER IF EXISTS authserver_test_die ON access_tokens; DROP FUNCTION IF EXISTS authserver_test_die();"
)


@pg_only
@pytest.mark.parametrize("replay_cache", ["database", "redis"])
def test_a_backend_killed_while_storing_the_token_leaves_the_assertion_usable(tmp_path, sqlite_template,
                                                                             pg_template_ready, replay_cache):
    """The database session dies in the middle of the token transaction (after the jti was recorded):
    the client gets 503 with Retry-After, nothing is stored, and the same assertion works afterwards."""
    with private_redis() as (url, _proc):
        overrides = {"redis_url": url} if replay_cache == "redis" else {}
        app = make_app(tmp_path, sqlite_template, "postgresql", pg_template_ready, **overrides)
        http = app.test_client()
        tenant = _tenant(app)
        assertion = tenant.assertion()
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(KILL_ON_TOKEN_INSERT)
        try:
            response = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
        finally:
            with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
                conn.execute(DROP_KILLER)
        assert_oauth_error(response, 503, "temporarily_unavailable")
        assert response.headers["Retry-After"].isdigit()
        assert _count(app, AccessToken) == 0 and _count(app, UsedAssertion) == 0
        if replay_cache == "redis":
            assert redis.Redis.from_url(url).keys("authserver:jti:*") == []
        again = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
        assert again.status_code == 200, again.get_json()
        replayed = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
        assert_oauth_error(replayed, 400, "invalid_grant")
        assert _count(app, AccessToken) == 1
        with app.app_context():
            db.engine.dispose()


def test_an_unreachable_database_answers_503_with_retry_after_and_logs_once(tmp_path, sqlite_template, caplog,
                                                                           monkeypatch):
    from authserver import outages

    from ..servers import free_port

    monkeypatch.setattr(outages, "_last_logged", {})  # a fresh episode for this test
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    app = make_app(tmp_path, sqlite_template, database_url=dead)
    http = app.test_client()
    caplog.set_level(logging.WARNING)
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y.z"}
    for _ in range(3):
        response = http.post("/oauth/token", data=form, headers={"Authorization": "Basic YWJjOmRlZg=="})
        assert_oauth_error(response, 503, "temporarily_unavailable")
        assert int(response.headers["Retry-After"]) > 0
    import jwt

    bearer = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "some-kid", "typ": "at+jwt"})
    api = http.get("/api/v1/clients", headers={"Authorization": f"Bearer {bearer}"})
    assert api.status_code == 503 and api.mimetype == "application/problem+json" and "Retry-After" in api.headers
    assert http.get("/readyz").status_code == 503
    outage_lines = [r for r in caplog.records if r.name == "authserver.outage"]
    assert len(outage_lines) == 1 and outage_lines[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "authserver"]


@pg_only
def test_a_read_only_database_still_introspects_and_refuses_tokens_with_503(pg_app):
    """A failover to a read-only database (default_transaction_read_only, applied to new sessions)."""
    http = pg_app.test_client()
    tenant = _tenant(pg_app)
    token = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).get_json()["access_token"]
    with pg_app.app_context():
        from authserver.models import ClientSecret

        db.session.execute(text("UPDATE client_secrets SET last_used_at = NULL"))  # so the next use wants a write
        db.session.commit()
        db.session.remove()
    name = psycopg.conninfo.conninfo_to_dict(_admin_dsn())["dbname"]
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    try:
        terminate_other_backends()
        answer = http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth())
        assert answer.status_code == 200 and answer.get_json()["active"] is True
        recorder = pg_app.extensions["authserver.services"].last_used
        assert recorder.flush() == 0 and recorder.pending() == 1  # kept until the database takes writes
        refused = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
        assert_oauth_error(refused, 503, "temporarily_unavailable")
        assert refused.headers["Retry-After"].isdigit()
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["checks"]["database"] == "read-only"
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = off")  # this new session started read-only too
            conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        terminate_other_backends()
    assert _count(pg_app, AccessToken) == 1
    assert http.get("/readyz").status_code == 200
    assert http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).status_code == 200
    assert recorder.flush() == 1 and recorder.pending() == 0
    with pg_app.app_context():
        assert db.session.scalar(select(ClientSecret.last_used_at)) is not None
        db.session.remove()


def test_a_hung_redis_costs_one_timeout_not_one_per_request(tmp_path, sqlite_template):
    """Redis frozen with SIGSTOP: token requests answer 503 with Retry-After at once (after the first
    has waited out the timeout), introspection never waits for Redis, and when Redis thaws tokens flow."""
    import signal
    import time

    with private_redis() as (url, proc):
        app = make_app(tmp_path, sqlite_template, redis_url=url, redis_cooldown=1)
        http = app.test_client()
        tenant = _tenant(app)
        token = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).get_json()["access_token"]
        proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(5):
                started = time.monotonic()
                response = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
                assert_oauth_error(response, 503, "temporarily_unavailable")
                assert response.headers["Retry-After"].isdigit()
                assert time.monotonic() - started < 2
            started = time.monotonic()
            answer = http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth())
            assert answer.get_json()["active"] is True and time.monotonic() - started < 2
            assert http.get("/readyz").status_code == 503
        finally:
            proc.send_signal(signal.SIGCONT)
        time.sleep(1.1)  # the cool-down
        assert http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).status_code == 200
        assert _count(app, AccessToken) == 2
        with app.app_context():
            db.engine.dispose()


@pg_only
def test_a_request_past_its_deadline_is_rolled_back_not_committed(tmp_path, sqlite_template, pg_template_ready):
    """Another transaction holds the lock the token transaction needs for longer than the request
    deadline: the client gets 503, nothing is stored, and the same assertion works afterwards."""
    import threading
    import time

    from authserver import clock
    from authserver.ratelimit import _bucket

    app = make_app(tmp_path, sqlite_template, "postgresql", pg_template_ready, request_deadline_seconds=1)
    http = app.test_client()
    tenant = _tenant(app)
    assertion = tenant.assertion()
    bucket, expires_at = _bucket("token:client:" + tenant.client_id, clock.now())
    holder = psycopg.connect(_admin_dsn())
    holder.execute(
        "INSERT INTO rate_limit_counters (bucket, count, expires_at) VALUES (%s, 1, %s)", (bucket, expires_at)
    )
    releaser = threading.Timer(1.5, holder.rollback)  # the lock goes after 1.5 s, past the 1 s deadline
    releaser.start()
    try:
        started = time.monotonic()
        response = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
        assert time.monotonic() - started >= 1.4
    finally:
        releaser.join()
        holder.close()
    assert_oauth_error(response, 503, "temporarily_unavailable")
    assert _count(app, AccessToken) == 0 and _count(app, UsedAssertion) == 0
    again = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    assert again.status_code == 200, again.get_json()
    with app.app_context():
        db.engine.dispose()
