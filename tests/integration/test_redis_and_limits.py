"""The Redis replay cache and rate limits, including Redis going away mid-flight (replay fails closed)."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import time

import pytest
import redis
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import AccessToken, RateLimitCounter, UsedAssertion

from ..conftest import make_app, make_tenant
from ..servers import free_port


@contextlib.contextmanager
def private_redis():
    """A redis-server of this test's own, so it can be stopped mid-flight."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required (Debian package redis-server)"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "private redis did not start"
                time.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def redis_app(tmp_path, sqlite_template):
    with private_redis() as (url, proc):
        app = make_app(tmp_path, sqlite_template, redis_url=url)
        with app.app_context():
            yield app, proc
            db.session.remove()


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_redis_replay_cache_accepts_a_jti_once(redis_app):
    app, _ = redis_app
    tenant = make_tenant()
    http = app.test_client()
    assertion = tenant.assertion()
    first = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    second = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    assert first.status_code == 200
    assert second.status_code == 400 and second.get_json()["error"] == "invalid_grant"
    assert _count(AccessToken) == 1
    assert _count(UsedAssertion) == 0  # the replay cache lives in Redis here


def test_replay_fails_closed_when_redis_goes_away_mid_flight(redis_app):
    app, proc = redis_app
    tenant = make_tenant()
    http = app.test_client()
    assert http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).status_code == 200
    proc.terminate()
    proc.wait(timeout=10)
    response = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "temporarily_unavailable" and "replay" in body["error_description"]
    assert _count(AccessToken) == 1  # nothing issued without the replay check


def test_readyz_reports_redis(redis_app):
    app, proc = redis_app
    http = app.test_client()
    assert http.get("/readyz").get_json()["checks"] == {"database": "ok", "redis": "ok"}
    proc.terminate()
    proc.wait(timeout=10)
    response = http.get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["redis"] == "unreachable"


def test_failed_authentications_per_client_id_do_not_lock_out_the_real_client(tmp_path, sqlite_template):
    app = make_app(
        tmp_path, sqlite_template, rate_limit_auth_failures_per_client=3, rate_limit_auth_failures_per_address=0
    )
    with app.app_context():
        tenant = make_tenant()
        http = app.test_client()
        statuses = [
            http.post(
                "/oauth/token", data=tenant.token_form(), headers={"Authorization": _basic(tenant.client_id, "guess")}
            ).status_code
            for _ in range(5)
        ]
        assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
        limited = http.post(
            "/oauth/token", data=tenant.token_form(), headers={"Authorization": _basic(tenant.client_id, "guess")}
        )
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        assert limited.get_json()["error"] == "slow_down"
        # The client with its real secret is never blocked by someone guessing at its id.
        assert http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).status_code == 200
        db.session.remove()


def test_failed_authentications_per_address_block_that_address(tmp_path, sqlite_template):
    app = make_app(
        tmp_path, sqlite_template, rate_limit_auth_failures_per_address=2, rate_limit_auth_failures_per_client=0
    )
    with app.app_context():
        tenant = make_tenant()
        http = app.test_client()
        statuses = [
            http.post(
                "/oauth/token", data=tenant.token_form(), headers={"Authorization": _basic(tenant.client_id, "nope")}
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        blocked = http.post(
            "/oauth/token", data=tenant.token_form(), headers={"Authorization": _basic("someone", "else")}
        )
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
        other = http.post(
            "/oauth/token",
            data=tenant.token_form(),
            headers={"Authorization": _basic("someone", "else")},
            environ_base={"REMOTE_ADDR": "10.9.8.7"},
        )
        assert other.status_code == 401  # another address is not affected
        # A correct secret from the limited address still works: limits only ever refuse failures.
        assert http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).status_code == 200
        assert _count(RateLimitCounter) >= 1
        db.session.remove()


def test_token_requests_per_client_are_limited(tmp_path, sqlite_template):
    app = make_app(tmp_path, sqlite_template, rate_limit_token_requests_per_client=2)
    with app.app_context():
        tenant = make_tenant()
        http = app.test_client()
        statuses = [
            http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert _count(AccessToken) == 2
        db.session.remove()


def _basic(client_id: str, secret: str) -> str:
    from ..conftest import basic

    return basic(client_id, secret)["Authorization"]
