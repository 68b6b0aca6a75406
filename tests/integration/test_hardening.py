"""Input hygiene and the credential comparisons, each test written to fail on a planted bug: text the
database cannot store, concurrent uniqueness races, cache counters under concurrency, keys of other
clients, secrets that differ at any position, files and log lines that must not leak."""
from __future__ import annotations

import threading

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, text

from authserver.errors import Conflict, InvalidInput
from authserver.extensions import db
from authserver.models import AccessToken, Client, ClientKey, UsedAssertion
from authserver.services.accounts import create_account
from authserver.services.client_keys import add_key
from authserver.services.organizations import create_organization

from ..conftest import PG_URL, basic, get_token, make_tenant, public_pem
from ..conftest import REDIS_URL as REDIS_TEST_URL
from .helpers import assert_oauth_error, count

LONE_SURROGATE = "\ud800"


# --- text the database cannot store or compare ---------------------------------------------------

@pytest.mark.parametrize("claim", ["sub", "jti"])
def test_lone_surrogate_in_assertion_claims_is_invalid_grant(http, tenant, claim):
    assertion = tenant.assertion(**{claim: "abc" + LONE_SURROGATE})
    response = http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth())
    assert_oauth_error(response, 400, "invalid_grant")
    assert count(AccessToken) == 0 and count(UsedAssertion) == 0


def test_lone_surrogate_kid_in_bearer_introspection_and_revocation(app, http, tenant, rsa_key):
    forged = jwt.encode({"sub": "x", "jti": "y", "client_id": tenant.client_id, "exp": 2**31}, rsa_key,
                        algorithm="RS256", headers={"kid": "k" + LONE_SURROGATE, "typ": "at+jwt"})
    assert http.get("/api/v1/clients", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    introspected = http.post("/oauth/introspect", data={"token": forged}, headers=tenant.auth())
    assert introspected.status_code == 200 and introspected.get_json() == {"active": False}
    assert http.post("/oauth/revoke", data={"token": forged}, headers=tenant.auth()).status_code == 200


@pytest.mark.parametrize("length", [255, 300, 319])
def test_email_longer_than_254_is_refused(app, length):
    org_id = create_organization("Acme").org_id
    # The longest shape the address pattern allows: a 64-character local part, a domain label of up to
    # 190 and a top-level label of up to 63 characters (up to 319 in all).
    middle = min(190, length - 64 - 2 - 2)
    email = "a" * 64 + "@" + "b" * middle + "." + "c" * (length - 64 - 2 - middle)
    assert len(email) == length
    with pytest.raises(InvalidInput) as refused:
        create_account(org_id, "Long", "user", email=email, password="correct horse battery staple")
    assert "254" in refused.value.message


# --- uniqueness races and cache counters, on a database that really runs transactions at once -------------

def _race(app, work, n: int = 6) -> list:
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = work(i)
            except Exception as exc:  # collected and asserted on by the test
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.skipif(not PG_URL, reason="needs AUTHSERVER_TEST_DATABASE_URL (CI sets it)")
@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_changes_never_answer_500_nor_lose_a_cache_bump(app, tenant, backend):
    org_id = tenant.org_id
    db.session.remove()
    emails = _race(app, lambda i: create_account(org_id, f"User {i}", "user", email="same@example.com",
                                                 password="correct horse battery staple").account_id)
    assert sum(isinstance(r, str) for r in emails) == 1 and all(isinstance(r, (str, Conflict)) for r in emails), emails
    pem = public_pem(ec.generate_private_key(ec.SECP256R1()))
    kids = _race(app, lambda i: add_key(tenant.client_id, pem, kid="same-kid").kid)
    assert kids.count("same-kid") == 1 and all(isinstance(r, (str, Conflict)) for r in kids), kids
    version_before = db.session.scalar(select(Client.keys_version).where(Client.client_id == tenant.client_id))
    db.session.remove()
    distinct = _race(app, lambda i: add_key(tenant.client_id, public_pem(ec.generate_private_key(ec.SECP256R1())),
                                            kid=f"k{i}").kid)
    assert sorted(distinct) == [f"k{i}" for i in range(6)], distinct
    version_after = db.session.scalar(select(Client.keys_version).where(Client.client_id == tenant.client_id))
    assert version_after == version_before + 6  # every concurrent change counted: no worker keeps a stale key set


# --- credential comparisons --------------------------------------------------------------------------

def test_a_key_of_another_client_never_verifies_whatever_the_kid(http, app):
    a = make_tenant("Acme", kid="shared")
    b = make_tenant("Globex", kid="shared")
    c = make_tenant("Initech", kid="c-only")
    cases = {
        "same kid, other client's key": a.assertion(key=b.private_key, headers={"kid": "shared"}),
        "no kid, other client's key": a.assertion(key=b.private_key, headers={}),
        "other client's kid and key": a.assertion(key=c.private_key, headers={"kid": "c-only"}),
    }
    # The other clients' keys are in every worker's cache already.
    get_token(http, b)
    get_token(http, c)
    for label, assertion in cases.items():
        response = http.post("/oauth/token", data=a.token_form(assertion), headers=a.auth())
        assert_oauth_error(response, 400, "invalid_grant")
        assert count(AccessToken, AccessToken.client_id == a.client_id) == 0, label
    assert count(ClientKey, ClientKey.kid == "shared") == 2


def _variants(secret: str) -> dict[str, str]:
    flip = lambda ch: "A" if ch != "A" else "B"  # noqa: E731
    return {
        "last character changed": secret[:-1] + flip(secret[-1]),
        "last character dropped": secret[:-1],
        "a character appended": secret + "A",
        "first random character changed": secret[:3] + flip(secret[3]) + secret[4:],
        "middle character changed": secret[:20] + flip(secret[20]) + secret[21:],
        "prefix changed": "xs_" + secret[3:],
        "upper-cased": secret.upper(),
    }


def test_a_secret_that_differs_anywhere_never_authenticates(http, tenant):
    # 16 failures: under the per-client failure limit (20 a minute), so each answer is the comparison's.
    for label, wrong in _variants(tenant.client_secret).items():
        response = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, wrong))
        assert response.status_code == 401, label
        post = {**tenant.token_form(), "client_id": tenant.client_id, "client_secret": wrong}
        assert http.post("/oauth/token", data=post).status_code == 401, label
    wrong = _variants(tenant.client_secret)["last character changed"]
    for endpoint in ("/oauth/introspect", "/oauth/revoke"):
        assert http.post(endpoint, data={"token": "x"}, headers=basic(tenant.client_id, wrong)).status_code == 401
    assert count(AccessToken) == 0
    assert http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth()).status_code == 200


def test_another_clients_valid_secret_never_authenticates_this_client(http, tenant, other_tenant):
    response = http.post(
        "/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, other_tenant.client_secret)
    )
    assert_oauth_error(response, 401, "invalid_client")


# --- what the server writes ---------------------------------------------------------------------------

def test_sqlite_files_are_private(tmp_path):
    import os
    import stat

    from authserver import create_app
    from authserver.cli import initialise

    app = create_app({"instance_path": str(tmp_path / "fresh"), "issuer": "http://localhost"})
    with app.app_context():
        initialise()
        tenant = make_tenant()
        path = db.engine.url.database
    get_token(app.test_client(), tenant)
    with app.app_context():
        db.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            assert stat.S_IMODE(os.stat(path + suffix).st_mode) & 0o077 == 0, suffix


def test_failing_statements_never_carry_their_values_into_errors(app, tenant, backend):
    from sqlalchemy.exc import IntegrityError

    stored_hash = db.session.execute(text("SELECT secret_hash FROM client_secrets")).scalar_one()
    with pytest.raises(IntegrityError) as failed:
        db.session.execute(text("INSERT INTO client_secrets (secret_id, client_id, secret_hash, created_at) "
                                "VALUES ('sec_dup', :c, :h, 1)"), {"c": tenant.client_id, "h": stored_hash})
    db.session.rollback()
    assert "SQL parameters hidden" in str(failed.value)
    if backend == "sqlite":  # PostgreSQL's own DETAIL line names a duplicate key's value
        assert stored_hash not in str(failed.value)


# --- console brute-force counters: atomic across workers ----------------------------------------------

@pytest.mark.skipif(not PG_URL, reason="needs AUTHSERVER_TEST_DATABASE_URL (concurrent transactions)")
@pytest.mark.parametrize("limiter", ["database", "redis"])
def test_concurrent_failed_sign_ins_are_all_counted(tmp_path, sqlite_template, pg_template_ready, limiter):
    """Exactly as many concurrent wrong passwords as the per-email-and-address limit use it up: had one
    increment been lost (read, add one, write back), the rightful password would be let in afterwards."""

    from authserver.console.auth import FAILURES_PER_EMAIL_AND_ADDRESS, sign_in

    from ..conftest import REDIS_URL, in_app_context, make_app
    from ..console_support import make_admin, start_of_a_rate_window

    if limiter == "redis" and not REDIS_URL:
        pytest.skip("needs AUTHSERVER_TEST_REDIS_URL")
    settings = {"redis_url": REDIS_URL} if limiter == "redis" else {}
    with in_app_context(make_app(tmp_path, sqlite_template, "postgresql", pg_template_ready, **settings)) as app:
        admin = make_admin()
        db.session.commit()
        db.session.remove()
        start_of_a_rate_window()  # every attempt in one rate window
        address = f"198.51.100.{threading.get_ident() % 200}"
        failures = _race(app, lambda i: sign_in(admin.email, f"wrong password number {i}", address).status,
                         n=FAILURES_PER_EMAIL_AND_ADDRESS)
        assert failures == [400] * FAILURES_PER_EMAIL_AND_ADDRESS, failures
        assert sign_in(admin.email, admin.password, address).status == 429
        assert sign_in(admin.email, admin.password, "203.0.113.5").account is not None  # elsewhere: no lockout


# --- the Redis replay record outlives the assertion ---------------------------------------------------

@pytest.mark.skipif(not REDIS_TEST_URL, reason="needs AUTHSERVER_TEST_REDIS_URL")
def test_the_redis_replay_record_outlives_a_fractional_exp(tmp_path, sqlite_template):
    """An `exp` of 20.999 s ahead is accepted until exp + skew, so its jti stays used at least that long: a
    TTL rounded down would let the assertion be replayed during its last fraction of a second."""
    import math
    import time

    import redis

    from ..conftest import in_app_context, make_app

    with in_app_context(make_app(tmp_path, sqlite_template, redis_url=REDIS_TEST_URL)) as app:
        skew = app.extensions["authserver.settings"].clock_skew
        tenant = make_tenant()
        exp = math.floor(time.time()) + 20.999
        assertion = tenant.assertion(exp=exp, jti="fractional-" + tenant.client_id)
        get_token(tenant_http(), tenant, assertion=assertion)
        client = redis.Redis.from_url(REDIS_TEST_URL)
        keys = [k for k in client.scan_iter(match=f"*fractional-{tenant.client_id}*")]
        assert len(keys) == 1
        assert client.pttl(keys[0]) / 1000 >= exp + skew - time.time() - 0.05  # 50 ms for the calls in between
        client.delete(*keys)


def tenant_http():
    from flask import current_app

    return current_app.test_client()


# --- JSON nested beyond reason, on every JSON route -----------------------------------------------------

@pytest.mark.parametrize("depth", [300, 5000])
def test_deeply_nested_json_is_a_client_error_on_every_json_route(http, tenant, depth):
    from authserver.api.routing import OPERATIONS

    from .api_support import API, make_manager

    manager = make_manager(http, "Nested")
    nested = '{"a": ' * depth + "1" + "}" * depth
    listed = '{"secrets": ' + "[" * depth + "]" * depth + "}"
    routes = [(op.method, API + op.path.replace("{", "").replace("}", "")) for op in OPERATIONS if op.body]
    assert routes
    for method, path in routes:
        for body in (nested, listed):
            response = http.open(path, method=method, data=body, content_type="application/json",
                                 headers=manager.headers())
            assert 400 <= response.status_code < 500, (method, path, response.status_code)
    for body in (nested, listed):
        response = http.post("/oauth/secret-leak", data=body, content_type="application/json")
        assert_oauth_error(response, 400 if len(body) <= 16384 else 413, "invalid_request")
