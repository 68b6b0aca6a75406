"""Operating the server: health, readiness, metrics, structured logs without secrets, proxies, purge."""
from __future__ import annotations

import io
import json
import logging

from sqlalchemy import func, select

from authserver import clock
from authserver.extensions import db
from authserver.models import AccessToken, UsedAssertion

from ..conftest import basic, get_token, make_app, make_tenant


def test_healthz_and_readyz(http):
    assert http.get("/healthz").get_json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": "ok"}


def test_metrics_count_tokens_and_auth_failures(http, tenant):
    get_token(http, tenant)
    http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, "wrong"))
    text = http.get("/metrics").get_data(as_text=True)
    assert 'authserver_tokens_issued_total{auth_method="client_secret_basic"}' in text
    assert "authserver_client_auth_failures_total" in text
    assert 'authserver_oauth_errors_total{error="invalid_client"}' in text
    assert 'authserver_http_request_duration_seconds_bucket{endpoint="/oauth/token"' in text


def test_logs_are_json_with_request_id_and_never_hold_secrets(http, tenant):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    from authserver.logging_setup import JsonFormatter

    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("authserver")
    logger.addHandler(handler)
    try:
        assertion = tenant.assertion()
        response = http.post("/oauth/token?client_id=x", headers={"X-Request-Id": "req-123"},
                             data={**tenant.token_form(assertion), "client_id": tenant.client_id,
                                   "client_secret": tenant.client_secret})
        token = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).get_json()["access_token"]
        http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth())
    finally:
        logger.removeHandler(handler)
    assert response.headers["X-Request-Id"] == "req-123"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line.get("request_id") == "req-123" and line.get("path") == "/oauth/token" for line in lines)
    text = stream.getvalue()
    for secret in (tenant.client_secret, assertion, token, assertion.split(".")[2], token.split(".")[2]):
        assert secret not in text


def test_trusted_proxy_address_is_used_for_limits(tmp_path, sqlite_template):
    app = make_app(tmp_path, sqlite_template, trusted_proxies=1, rate_limit_auth_failures_per_address=1,
                   rate_limit_auth_failures_per_client=0)
    with app.app_context():
        tenant = make_tenant()
        http = app.test_client()
        bad = basic(tenant.client_id, "wrong")

        def attempt(address: str) -> int:
            return http.post("/oauth/token", data=tenant.token_form(),
                             headers={**bad, "X-Forwarded-For": address}).status_code

        assert attempt("203.0.113.9") == 401
        assert attempt("203.0.113.9") == 429
        assert attempt("203.0.113.10") == 401  # another client behind the same balancer
        db.session.remove()


def test_purge_deletes_expired_records_only(app, http, tenant):
    from authserver.cli import purge_once

    get_token(http, tenant)
    assert db.session.scalar(select(func.count()).select_from(AccessToken)) == 1
    assert purge_once()["access_tokens"] == 0
    clock.shift(3600 + 61 + 1)
    result = purge_once()
    assert result["access_tokens"] == 1 and result["used_assertions"] == 1
    assert db.session.scalar(select(func.count()).select_from(AccessToken)) == 0
    assert db.session.scalar(select(func.count()).select_from(UsedAssertion)) == 0
