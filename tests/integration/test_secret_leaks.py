"""Scannable secrets (SPEC §10): the checksummed format is checked at authentication before any
lookup, secrets from before it keep working, and POST /oauth/secret-leak disables the secrets a
secret scanner reports, audits it, and answers the same 202 whatever it found."""
from __future__ import annotations

import json
import re
import secrets
import time

import pytest
from flask import current_app
from sqlalchemy import select

from authserver import clock
from authserver.crypto.client_secrets import SECRET_REGEX, generate_client_secret, hash_client_secret, secret_checksum
from authserver.extensions import db
from authserver.models import AuditEvent, ClientSecret
from authserver.services.client_secrets import add_secret

from ..conftest import basic, get_token
from ..console_support import signed_in
from .api_support import API
from .helpers import assert_no_store, assert_oauth_error, body_text, case

LEAK = "/oauth/secret-leak"
ACCEPTED = {"status": "accepted"}
UNKNOWN = "unknown client or wrong secret"


def report(http, *reported, addr: str = "203.0.113.7", **kwargs):
    return http.post(LEAK, json={"secrets": list(reported)}, environ_base={"REMOTE_ADDR": addr}, **kwargs)


def secret_row(secret_id: str) -> ClientSecret | None:
    db.session.rollback()
    return db.session.get(ClientSecret, secret_id)


def leaked_rows() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(ClientSecret.secret_id).where(ClientSecret.leaked_at.is_not(None))))


def leak_events(org_id: str | None = None) -> list[AuditEvent]:
    db.session.rollback()
    query = select(AuditEvent).where(AuditEvent.action == "secret.leaked")
    if org_id is not None:
        query = query.where(AuditEvent.org_id == org_id)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def store_secret(client_id: str, plaintext: str) -> str:
    """A row for a secret made outside today's generator (a secret of an older release, or a string
    of the test's choosing), stored exactly as the server stores secrets."""
    secret_id = "sec_" + secrets.token_hex(10)
    pepper = current_app.extensions["authserver.settings"].secret_pepper
    db.session.add(
        ClientSecret(
            secret_id=secret_id,
            client_id=client_id,
            secret_hash=hash_client_secret(plaintext, pepper),
            created_at=clock.now(),
            last_used_at=None,
        )
    )
    db.session.commit()
    return secret_id


def call(http, endpoint: str, tenant, secret: str, token: str = "whatever"):
    if endpoint == "token":
        return http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, secret))
    return http.post(f"/oauth/{endpoint}", data={"token": token}, headers=basic(tenant.client_id, secret))


def with_checksum_broken(secret: str) -> str:
    wrong = "000000" if secret[-6:] != "000000" else "000001"
    return secret[:-6] + wrong


def in_a_fresh_window() -> None:
    """Pin the clock to the start of a rate-limit minute, so the window cannot turn during the test."""
    now = clock.now()
    clock.reset()
    clock.shift(now - now % 60 + 60 + 0.5 - time.time())


# --- the format at authentication ---------------------------------------------------------------

def test_every_new_secret_has_the_published_format(http, manager):
    from_api = http.post(f"{API}/clients/{manager.tenant.client_id}/secrets", headers=manager.headers()).get_json()
    for secret in (
        manager.tenant.client_secret,
        from_api["client_secret"],
        add_secret(manager.tenant.client_id).client_secret,
    ):
        assert re.fullmatch(SECRET_REGEX, secret), secret[:5]
        assert secret[-6:] == secret_checksum(secret[5:-6])


@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke"])
def test_a_string_failing_the_checksum_is_refused_before_any_lookup(http, tenant, endpoint):
    """A row whose hash is that of a string with the prefix but a wrong checksum: were the string
    looked up, it would authenticate. It is refused, as malformed, and the row is never touched."""
    planted = with_checksum_broken(generate_client_secret())
    planted_id = store_secret(tenant.client_id, planted)
    refused = call(http, endpoint, tenant, planted)
    body = assert_oauth_error(refused, 401, "invalid_client")
    assert "malformed" in body["error_description"] and "checksum" in body["error_description"]
    # Truncated and mistyped secrets of the client are told the same, before any hashing.
    for mangled in (tenant.client_secret[:-1], tenant.client_secret[:20] + "-" + tenant.client_secret[21:],
                    with_checksum_broken(tenant.client_secret)):
        with case(mangled[:8]):
            body = assert_oauth_error(call(http, endpoint, tenant, mangled), 401, "invalid_client")
            assert "malformed" in body["error_description"]
    http.application.extensions["authserver.services"].last_used.flush()
    assert secret_row(planted_id).last_used_at is None
    # The control: the same planting with a string of the older format does authenticate.
    legacy = "as_" + secrets.token_urlsafe(32)
    store_secret(tenant.client_id, legacy)
    response = call(http, endpoint, tenant, legacy)
    assert response.status_code == 200, body_text(response)


def test_secrets_from_before_the_format_keep_working(http, tenant, other_tenant):
    legacy = "as_" + secrets.token_urlsafe(32)  # the shape this server generated before
    legacy_id = store_secret(tenant.client_id, legacy)
    issued = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, legacy))
    assert issued.status_code == 200, body_text(issued)
    token = issued.get_json()["access_token"]
    answer = http.post("/oauth/introspect", data={"token": token}, headers=basic(tenant.client_id, legacy))
    assert answer.status_code == 200 and answer.get_json()["active"] is True
    http.application.extensions["authserver.services"].last_used.flush()
    assert secret_row(legacy_id).last_used_at is not None
    # Any string without the new prefix is looked up the old way: unknown ones are simply unknown.
    for other in ("as_" + secrets.token_urlsafe(32), "not-a-secret", "ASCS_" + generate_client_secret()[5:]):
        with case(other[:6]):
            body = assert_oauth_error(call(http, "token", tenant, other), 401, "invalid_client")
            assert UNKNOWN in body["error_description"]
    # Another client's old-format secret does not authenticate this one.
    assert (
        UNKNOWN
        in assert_oauth_error(call(http, "token", other_tenant, legacy), 401, "invalid_client")["error_description"]
    )


# --- reporting a leak ---------------------------------------------------------------------------

def test_a_reported_secret_is_disabled_audited_and_answered_202(http, tenant, other_tenant):
    spare = add_secret(tenant.client_id)
    token = get_token(http, tenant)["access_token"]  # obtained with the secret about to leak
    response = report(http, tenant.client_secret)
    assert response.status_code == 202 and response.get_json() == ACCEPTED
    assert response.mimetype == "application/json"
    assert_no_store(response)

    row = secret_row(tenant.secret_id)
    assert row is not None and row.leaked_at is not None  # kept, marked, so the owner sees why
    assert leaked_rows() == [tenant.secret_id]
    (event,) = leak_events()
    assert (event.org_id, event.object_type, event.object_id) == (tenant.org_id, "client_secret", tenant.secret_id)
    assert event.actor == "leak-report" and event.ip_address == "203.0.113.7"
    assert json.loads(event.details) == {"client_id": tenant.client_id}
    assert tenant.client_secret not in event.details
    assert leak_events(other_tenant.org_id) == []

    # Refused from now on, with a description that says why; the client's other secret still works
    # and the token the leaked secret obtained stays valid.
    refused = call(http, "token", tenant, tenant.client_secret)
    description = assert_oauth_error(refused, 401, "invalid_client")["error_description"]
    assert "reported leaked" in description
    answer = http.post("/oauth/introspect", data={"token": token}, headers=basic(tenant.client_id, spare.client_secret))
    assert answer.status_code == 200 and answer.get_json()["active"] is True
    response = call(http, "token", tenant, spare.client_secret)
    assert response.status_code == 200, body_text(response)
    response = call(http, "token", other_tenant, other_tenant.client_secret)
    assert response.status_code == 200, body_text(response)

    # Reporting it again changes nothing: the first report's time and one audit event stay.
    again = report(http, tenant.client_secret)
    assert again.status_code == 202 and again.get_data() == response_body(ACCEPTED)
    assert secret_row(tenant.secret_id).leaked_at == row.leaked_at and len(leak_events()) == 1


def response_body(body: dict) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke"])
def test_a_leaked_secret_is_refused_at_every_endpoint_and_only_its_holder_learns_why(http, tenant, other_tenant,
                                                                                    endpoint):
    token = get_token(http, tenant)["access_token"]
    assert report(http, tenant.client_secret).status_code == 202
    refused = call(http, endpoint, tenant, tenant.client_secret, token)
    body = assert_oauth_error(refused, 401, "invalid_client")
    assert "reported leaked" in body["error_description"] and "Add a new secret" in body["error_description"]
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    # Presented with another client's id it is just a wrong secret: no word about the leak.
    stranger = assert_oauth_error(
        call(http, endpoint, other_tenant, tenant.client_secret, token), 401, "invalid_client"
    )
    assert UNKNOWN in stranger["error_description"] and "leak" not in stranger["error_description"]


def test_the_answer_is_the_same_whatever_was_found(http, tenant):
    spare = add_secret(tenant.client_id)
    expired = add_secret(tenant.client_id, expires_in_days=1)
    legacy = "as_" + secrets.token_urlsafe(32)
    legacy_id = store_secret(tenant.client_id, legacy)
    reports = {
        "valid secret": [tenant.client_secret],
        "unknown well-formed secret": [generate_client_secret()],
        "wrong checksum": [with_checksum_broken(spare.client_secret)],
        "old-format secret": [legacy],
        "unknown old-format string": ["as_" + secrets.token_urlsafe(32)],
        "garbage": ["hello", "ünïcödé \u2603", "x" * 512, "\x00"],
        "already reported": [tenant.client_secret],
        "duplicates and a mix": [generate_client_secret(), tenant.client_secret, tenant.client_secret],
    }
    answers = {}
    for label, reported in reports.items():
        with case(label):
            response = report(http, *reported)
            answers[label] = (response.status_code, response.get_data(), response.headers["Content-Type"],
                              response.headers.get("Cache-Control"))
    assert len(set(answers.values())) == 1, answers
    assert next(iter(answers.values()))[:2] == (202, response_body(ACCEPTED))
    # What was found was disabled; the well-formed secret behind the broken checksum was not.
    assert sorted(leaked_rows()) == sorted([tenant.secret_id, legacy_id])
    assert secret_row(spare.secret_id).leaked_at is None and secret_row(expired.secret_id).leaked_at is None
    assert len(leak_events(tenant.org_id)) == 2
    # An expired secret reported later is marked too: its owner learns it was out in the open.
    clock.shift(2 * 86400)
    assert report(http, expired.client_secret).status_code == 202
    assert secret_row(expired.secret_id).leaked_at is not None


def test_the_leak_shows_in_the_api_and_the_console(http, manager, app):
    from ..console_support import make_admin

    cid = manager.tenant.client_id
    assert report(http, manager.tenant.client_secret).status_code == 202
    leaked_at = secret_row(manager.tenant.secret_id).leaked_at
    # The manager's bearer token was obtained with the leaked secret and stays valid.
    listed = http.get(f"{API}/clients/{cid}/secrets", headers=manager.headers())
    assert listed.status_code == 200
    (item,) = listed.get_json()["items"]
    assert item["leaked_at"] == clock.isoformat(leaked_at)
    console = signed_in(app, make_admin(org_id=manager.org_id))
    html = console.get(f"/console/apps/{cid}").get_data(as_text=True)
    section = html.split('id="secrets"', 1)[1].split('id="keys"', 1)[0]
    row = section.split(manager.tenant.secret_id, 1)[1].split("</tr>", 1)[0]
    assert "Reported leaked" in row and 'id="secret-warning"' in section


# --- bad reports and the rate limit -------------------------------------------------------------

def test_bad_reports_are_400_with_a_clear_error_and_disable_nothing(http, tenant):
    valid = tenant.client_secret
    bodies = {  # labels, not the bodies, name the cases: they hold a real secret
        "101 entries": ({"secrets": [valid] * 101}, "at most 100"),
        "empty list": ({"secrets": []}, "non-empty array"),
        "a string": ({"secrets": valid}, "non-empty array"),
        "an object": ({"secrets": {"0": valid}}, "non-empty array"),
        "a number": ({"secrets": [valid, 7]}, "string of 1 to 512"),
        "null": ({"secrets": [valid, None]}, "string of 1 to 512"),
        "empty string": ({"secrets": [valid, ""]}, "string of 1 to 512"),
        "513 characters": ({"secrets": [valid, "x" * 513]}, "string of 1 to 512"),
        "another member": ({"secrets": [valid], "source": "https://example.com/leak"}, "one member, secrets"),
        "other name": ({"tokens": [valid]}, "one member, secrets"),
        "a bare list": ([valid], "one member, secrets"),
    }
    for label, (body, needle) in bodies.items():
        with case(label):
            response = http.post(LEAK, json=body)
            assert needle in assert_oauth_error(response, 400, "invalid_request")["error_description"]
    raw_bodies = {
        "cut short": ('{"secrets": ["' + valid + '"]', "application/json", "not valid JSON"),
        "NaN": ('{"secrets": [NaN]}', "application/json", "not valid JSON"),
        "not UTF-8": (b'{"secrets": ["\xff"]}', "application/json", "not valid JSON"),
        "a form": ("secrets=" + valid, "application/x-www-form-urlencoded", "application/json"),
        "text/plain": ('{"secrets": ["' + valid + '"]}', "text/plain", "application/json"),
    }
    for label, (data, content_type, needle) in raw_bodies.items():
        with case(label):
            response = http.post(LEAK, data=data, headers={"Content-Type": content_type})
            assert needle in assert_oauth_error(response, 400, "invalid_request")["error_description"]
    # A body over the OAuth endpoints' limit (16 KiB) is refused as too large before it is read.
    response = http.post(LEAK, json={"secrets": [valid] + ["y" * 500] * 40})
    assert "larger than 16384 bytes" in assert_oauth_error(response, 413, "invalid_request")["error_description"]
    # Only POST.
    response = http.get(LEAK)
    assert response.status_code == 405 and response.headers["Allow"] == "OPTIONS, POST"
    assert response.get_json()["error"] == "invalid_request"
    assert leaked_rows() == [] and leak_events() == []
    ok = call(http, "token", tenant, valid)
    assert ok.status_code == 200, body_text(ok)


def test_reports_are_rate_limited_per_address(http, tenant):
    in_a_fresh_window()
    for number in range(30):
        with case(number):
            assert report(http, generate_client_secret()).status_code == 202
    limited = report(http, tenant.client_secret)
    assert_oauth_error(limited, 429, "slow_down")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert secret_row(tenant.secret_id).leaked_at is None  # refused before anything was looked at
    # Bad requests count too, and another address is not held back.
    assert report(http, "x", addr="203.0.113.7").status_code == 429
    assert report(http, "x", addr="198.51.100.20").status_code == 202
    # The next window accepts again.
    clock.shift(60)
    assert report(http, tenant.client_secret).status_code == 202
    assert secret_row(tenant.secret_id).leaked_at is not None
