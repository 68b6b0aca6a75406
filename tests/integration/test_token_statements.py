"""The token path's writes: on PostgreSQL one statement counts the request, uses up the assertion's jti
and stores the token record (token_store.record_token), where SQLite runs one statement per write. What
a request stores, and what it refuses, is the same on both."""
from __future__ import annotations

import jwt
import pytest
from sqlalchemy import func, select

from authserver import store
from authserver.extensions import db
from authserver.models import AccessToken, RateLimitCounter, UsedAssertion

from ..conftest import get_token


@pytest.fixture
def statements(monkeypatch):
    """The SQL statements the token path runs, in order."""
    seen: list[str] = []
    run = store.execute

    def counting(prepared, params):
        cursor = run(prepared, params)
        seen.append(" ".join(prepared.compiled(store._connection()[1])[0].split()))
        return cursor

    monkeypatch.setattr(store, "execute", counting)
    return seen


def test_one_statement_writes_the_token_on_postgresql_and_the_rows_are_all_there(app, backend, http, tenant,
                                                                                  statements):
    get_token(http, tenant)  # the first request also loads keys into the worker's caches
    statements.clear()
    body = get_token(http, tenant)
    if backend == "postgresql":
        assert len(statements) == 3, statements  # the secret, the subject, then every write at once
        assert statements[2].startswith("WITH counted AS (INSERT INTO rate_limit_counters")
        assert "INSERT INTO used_assertions" in statements[2] and "INSERT INTO access_tokens" in statements[2]
    else:
        assert len(statements) == 5, statements
    assert body["token_type"] == "Bearer"
    assert db.session.scalar(select(func.count()).select_from(AccessToken)) == 2
    assert db.session.scalar(select(func.count()).select_from(UsedAssertion)) == 2
    assert db.session.scalar(select(func.max(RateLimitCounter.count))) == 2


def test_a_replayed_assertion_stores_nothing_and_counts_nothing(app, http, tenant):
    assertion = tenant.assertion()
    first = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    assert first.status_code == 200
    again = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert db.session.scalar(select(func.count()).select_from(AccessToken)) == 1
    assert db.session.scalar(select(func.count()).select_from(UsedAssertion)) == 1
    assert db.session.scalar(select(func.max(RateLimitCounter.count))) == 1  # the refused request rolled back


@pytest.mark.parametrize("app_settings", [{"rate_limit_token_requests_per_client": 0}])
def test_without_a_token_rate_limit_the_writes_still_use_up_the_jti(app, backend, http, tenant, statements):
    assertion = tenant.assertion()
    statements.clear()
    first = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    assert first.status_code == 200, first.get_json()
    assert statements and not any("rate_limit_counters" in s for s in statements)
    again = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert db.session.scalar(select(func.count()).select_from(AccessToken)) == 1
    assert db.session.scalar(select(func.count()).select_from(UsedAssertion)) == 1
    assert db.session.scalar(select(func.count()).select_from(RateLimitCounter)) == 0


@pytest.mark.parametrize("app_settings", [{"rate_limit_token_requests_per_client": 2}])
def test_a_request_over_the_rate_limit_stores_nothing_and_leaves_its_jti_unused(app, backend, http, tenant):
    assertions = [tenant.assertion() for _ in range(3)]
    answers = [http.post("/oauth/token", data=tenant.token_form(a), headers=tenant.auth()) for a in assertions]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
    assert db.session.scalar(select(func.count()).select_from(AccessToken)) == 2
    used = set(db.session.scalars(select(UsedAssertion.jti)))
    refused_jti = jwt.decode(assertions[2], options={"verify_signature": False})["jti"]
    assert len(used) == 2 and refused_jti not in used  # the same assertion may be sent again next window
    assert db.session.scalar(select(func.max(RateLimitCounter.count))) == 2  # the refused event rolled back
