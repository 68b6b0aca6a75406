"""The same assertion sent by many callers at the same instant gives exactly one token (SPEC §4,
RFC 7523 §3 item 7): each thread has its own app (its own engine and connections, like a worker
process) on the one database (the SQLite file, or PostgreSQL when the suite has one)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from authserver import create_app
from authserver.extensions import db
from authserver.models import AccessToken, UsedAssertion

from ..conftest import ISSUER
from .helpers import count, unverified_claims

CALLERS = 8


def _race(app, forms: list[dict], headers: dict) -> list:
    """POST the forms from as many threads, released together; each thread has its own app."""
    settings = app.extensions["authserver.settings"]
    same = {"instance_path": app.instance_path, "issuer": ISSUER, "database_url": settings.database_url}
    apps = [create_app(same) for _ in forms]
    barrier = threading.Barrier(len(forms))

    def call(index):
        client = apps[index].test_client()
        barrier.wait(timeout=10)
        response = client.post("/oauth/token", data=forms[index], headers=headers)
        return response.status_code, response.get_json()

    try:
        with ThreadPoolExecutor(max_workers=len(forms)) as pool:
            return list(pool.map(call, range(len(forms)), timeout=60))
    finally:
        for worker_app in apps:
            with worker_app.app_context():
                db.engine.dispose()


def test_same_assertion_at_the_same_instant_gives_exactly_one_token(app, tenant):
    assertion = tenant.assertion()
    results = _race(app, [tenant.token_form(assertion)] * CALLERS, tenant.auth())
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * (CALLERS - 1), statuses
    errors = {body["error"] for status, body in results if status != 200}
    assert errors == {"invalid_grant"}
    winner = next(body for status, body in results if status == 200)
    assert unverified_claims(winner["access_token"])["jti"]
    assert count(AccessToken) == 1
    assert count(UsedAssertion, UsedAssertion.jti == unverified_claims(assertion)["jti"]) == 1


def test_distinct_assertions_at_the_same_instant_all_succeed(app, tenant):
    """The control: concurrency alone refuses nothing, only the replay does."""
    results = _race(app, [tenant.token_form() for _ in range(CALLERS)], tenant.auth())
    assert [status for status, _ in results] == [200] * CALLERS, [body for _, body in results if body.get("error")]
    assert count(AccessToken) == CALLERS
    assert count(UsedAssertion) == CALLERS
