"""Client secret expiry (SPEC §10): set through every door (CLI, management API, console) or by the
default lifetime setting, shown in every listing, and enforced at the token, introspection and
revocation endpoints like a deleted secret, with a description that tells the holder it expired."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from authserver import clock
from authserver.cli import main
from authserver.config import ConfigError, load_settings
from authserver.crypto.client_secrets import generate_client_secret
from authserver.extensions import db
from authserver.models import AccessToken, AuditEvent, ClientSecret, UsedAssertion
from authserver.services.client_secrets import add_secret

from ..conftest import ISSUER, basic, get_token, in_app_context, make_app, make_tenant
from ..console_support import signed_in
from .api_support import API, assert_problem, make_manager
from .helpers import assert_oauth_error, body_text, case, count

DAY = 86400
UNKNOWN = "unknown client or wrong secret"


# --- helpers ------------------------------------------------------------------------------------

def secret_rows(client_id: str) -> list[ClientSecret]:
    db.session.rollback()
    return list(db.session.scalars(select(ClientSecret).where(ClientSecret.client_id == client_id)
                                   .order_by(ClientSecret.created_at, ClientSecret.secret_id)))


def created_events(org_id: str) -> int:
    return count(AuditEvent, AuditEvent.org_id == org_id, AuditEvent.action == "secret.created")


def at(moment: int) -> None:
    """Set the server's clock to the middle of the second `moment`: a second boundary passing
    while the test runs cannot move it on."""
    clock.reset()
    clock.shift(moment + 0.5 - time.time())


def iso(timestamp: int) -> str:
    return clock.isoformat(timestamp)


def utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def fresh_form(tenant, secret: str | None = None) -> tuple[dict, dict]:
    """A token request whose assertion is valid at the server's (possibly moved) clock."""
    now = clock.now()
    form = tenant.token_form(tenant.assertion(iat=now, exp=now + 120))
    return form, basic(tenant.client_id, secret or tenant.client_secret)


def call(http, endpoint: str, tenant, secret: str, token: str = "whatever"):
    """One request to an OAuth endpoint that authenticates the client with `secret` (Basic)."""
    if endpoint == "token":
        form, headers = fresh_form(tenant, secret)
        return http.post("/oauth/token", data=form, headers=headers)
    return http.post(f"/oauth/{endpoint}", data={"token": token}, headers=basic(tenant.client_id, secret))


class Cli:
    """The `authserver` command line, in process, on the test app's own database and instance."""

    def __init__(self, app, **env):
        settings = app.extensions["authserver.settings"]
        self.env = {"AUTHSERVER_INSTANCE_PATH": str(settings.instance_path), "AUTHSERVER_ISSUER": ISSUER,
                    "AUTHSERVER_DATABASE_URL": settings.database_url, **env}

    def run(self, *args):
        known = set(db._app_engines)
        try:
            return CliRunner().invoke(main, [str(a) for a in args], env=self.env, catch_exceptions=False)
        finally:
            # A command's process would end here; in process, its app's connections are closed now.
            for cli_app in [a for a in list(db._app_engines) if a not in known]:
                for engine in db._app_engines[cli_app].values():
                    engine.dispose()

    def json(self, *args):
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.stderr[-400:]
        assert result.stdout.count("\n") == 1
        return json.loads(result.stdout)

    def fails(self, *args, needle: str) -> str:
        result = self.run(*args, "--json")
        assert result.exit_code != 0 and result.stdout == "", (result.exit_code, result.stdout[:80])
        assert result.stderr.startswith("error: ") and needle.lower() in result.stderr.lower(), result.stderr[-300:]
        return result.stderr


# --- refusal at the three endpoints once expired ------------------------------------------------

@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke"])
def test_an_expired_secret_is_refused_like_a_deleted_one_and_says_it_expired(http, tenant, other_tenant, endpoint):
    new = add_secret(tenant.client_id, expires_in_days=1)
    assert new.expires_at == new.created_at + DAY
    token = get_token(http, tenant)["access_token"]

    at(new.expires_at - 1)  # the last second it works
    response = call(http, endpoint, tenant, new.client_secret, token)
    assert response.status_code == 200, body_text(response)

    at(new.expires_at)  # expires_at itself: no longer
    tokens_before, jtis_before = count(AccessToken), count(UsedAssertion)
    http.application.extensions["authserver.services"].last_used.flush()  # the use a second ago
    db.session.rollback()
    last_used_before = db.session.get(ClientSecret, new.secret_id).last_used_at
    assert last_used_before is not None
    refused = call(http, endpoint, tenant, new.client_secret, token)
    body = assert_oauth_error(refused, 401, "invalid_client")
    assert "expired" in body["error_description"] and iso(new.expires_at) in body["error_description"]
    assert refused.headers["WWW-Authenticate"].startswith("Basic")  # the client used Basic
    assert count(AccessToken) == tokens_before and count(UsedAssertion) == jtis_before  # nothing used up
    http.application.extensions["authserver.services"].last_used.flush()
    db.session.rollback()
    assert db.session.get(ClientSecret, new.secret_id).last_used_at == last_used_before

    # Only the holder of that exact secret with its client id learns it expired: anyone else gets the
    # answer an unknown secret gets.
    stranger = call(http, endpoint, other_tenant, new.client_secret, token)
    assert UNKNOWN in assert_oauth_error(stranger, 401, "invalid_client")["error_description"]
    wrong = call(http, endpoint, tenant, generate_client_secret(), token)  # well-formed, but nobody's
    assert UNKNOWN in assert_oauth_error(wrong, 401, "invalid_client")["error_description"]
    # The client's secret without an expiry still works; the expired row stays for its owner to see.
    response = call(http, endpoint, tenant, tenant.client_secret, token)
    assert response.status_code == 200, body_text(response)
    assert db.session.get(ClientSecret, new.secret_id) is not None


def test_an_expired_secret_sent_in_the_form_is_refused_without_a_basic_challenge(http, tenant):
    new = add_secret(tenant.client_id, expires_in_days=3)
    clock.shift(3 * DAY + 60)
    form, _ = fresh_form(tenant)
    response = http.post(
        "/oauth/token", data={**form, "client_id": tenant.client_id, "client_secret": new.client_secret}
    )
    assert "expired" in assert_oauth_error(response, 401, "invalid_client")["error_description"]
    assert "WWW-Authenticate" not in response.headers


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_sets_expiry_in_days_or_at_a_time_and_lists_it(app, http, tenant):
    cli = Cli(app)
    now = clock.now()
    by_days = cli.json("secret", "add", tenant.client_id, "--expires-in", "30")
    assert set(by_days) == {"secret_id", "client_secret", "hint", "label", "expires_at"}
    stored = db.session.get(ClientSecret, by_days["secret_id"])
    assert now + 30 * DAY <= stored.expires_at <= clock.now() + 30 * DAY
    assert by_days["expires_at"] == iso(stored.expires_at)

    at = utc(now + 10 * DAY).replace(microsecond=0).astimezone(timezone(timedelta(hours=2)))
    by_time = cli.json("secret", "add", tenant.client_id, "--expires-at", at.isoformat())  # +02:00
    assert db.session.get(ClientSecret, by_time["secret_id"]).expires_at == int(at.timestamp())
    assert by_time["expires_at"] == iso(int(at.timestamp())) and by_time["expires_at"].endswith("Z")

    day = (utc(now) + timedelta(days=20)).date()
    by_date = cli.json("secret", "add", tenant.client_id, "--expires-at", day.isoformat())  # a date: midnight UTC
    assert by_date["expires_at"] == f"{day.isoformat()}T00:00:00Z"

    listed = {row["secret_id"]: row for row in cli.json("secret", "list", tenant.client_id)}
    assert listed[tenant.secret_id]["expires_at"] is None and listed[tenant.secret_id]["leaked_at"] is None
    assert listed[by_days["secret_id"]]["expires_at"] == by_days["expires_at"]
    assert listed[by_time["secret_id"]]["expires_at"] == by_time["expires_at"]
    for secret in (by_days, by_time, by_date):
        assert secret["client_secret"] not in json.dumps(listed)

    # The human listing warns about the one expiring within 14 days, then about the expired one.
    human = cli.run("secret", "list", tenant.client_id).stdout
    line = next(line for line in human.splitlines() if line.startswith(by_time["secret_id"]))
    assert "expires in 10 days" in line
    assert "!" not in next(line for line in human.splitlines() if line.startswith(by_days["secret_id"]))
    clock.shift(11 * DAY)
    human = cli.run("secret", "list", tenant.client_id).stdout
    assert "EXPIRED" in next(line for line in human.splitlines() if line.startswith(by_time["secret_id"]))

    # The CLI's secret works until its time, then is refused as expired.
    tenant.client_secret = by_days["client_secret"]
    form, headers = fresh_form(tenant)
    response = http.post("/oauth/token", data=form, headers=headers)
    assert response.status_code == 200, body_text(response)
    clock.shift(20 * DAY)
    form, headers = fresh_form(tenant)
    body = assert_oauth_error(http.post("/oauth/token", data=form, headers=headers), 401, "invalid_client")
    assert f"expired at {by_days['expires_at']}" in body["error_description"]


def test_cli_refuses_bad_expiries_and_stores_nothing(app, tenant):
    cli = Cli(app)
    now = clock.now()
    past = utc(now - 60).isoformat()
    future = utc(now + DAY).isoformat()
    cases = [
        (("--expires-in", "30", "--expires-at", future), "not both"),
        (("--expires-at", past), "already passed"),
        (("--expires-at", utc(now).isoformat()), "already passed"),  # now is not in the future
        (("--expires-at", "2001-01-01"), "already passed"),
        (("--expires-at", (utc(now) + timedelta(days=3651)).isoformat()), "at most 3650 days"),
        (("--expires-at", "2030-01-31T12:00:00"), "time zone"),  # no zone: a different instant on each host
        (("--expires-at", "next tuesday"), "ISO 8601"),
        (("--expires-at", "2030-02-30T00:00:00Z"), "ISO 8601"),
        (("--expires-in", "0"), "from 1 to 3650"),
        (("--expires-in", "-5"), "from 1 to 3650"),
        (("--expires-in", "3651"), "from 1 to 3650"),
        (("--expires-in", "1.5"), "whole number"),
        (("--expires-in", "ten"), "whole number"),
        (("--expires-in", "9" * 40), "whole number"),
    ]
    events = created_events(tenant.org_id)
    for args, needle in cases:
        with case(args):
            cli.fails("secret", "add", tenant.client_id, *args, needle=needle)
            assert [r.secret_id for r in secret_rows(tenant.client_id)] == [tenant.secret_id]
    assert created_events(tenant.org_id) == events


# --- the management API -------------------------------------------------------------------------

def test_api_sets_expiry_and_carries_it_in_every_answer(http, manager):
    h = manager.headers()
    url = f"{API}/clients/{manager.tenant.client_id}/secrets"
    now = clock.now()
    by_days = http.post(url, json={"expires_in_days": 30}, headers=h)
    assert by_days.status_code == 201, by_days.get_json()
    body = by_days.get_json()
    assert set(body) == {"secret_id", "client_secret", "hint", "label", "created_at", "expires_at"}
    stored = db.session.get(ClientSecret, body["secret_id"])
    assert now + 30 * DAY <= stored.expires_at <= clock.now() + 30 * DAY
    assert body["expires_at"] == iso(stored.expires_at)

    at = (utc(now) + timedelta(days=7)).replace(microsecond=0).astimezone(timezone(timedelta(hours=-5)))
    by_time = http.post(url, json={"expires_at": at.isoformat()}, headers=h).get_json()
    assert by_time["expires_at"] == iso(int(at.timestamp()))
    empty = http.post(url, json={}, headers=h)  # an empty object, like no body: no expiry
    assert empty.status_code == 201 and empty.get_json()["expires_at"] is None

    shown = http.get(f"{url}/{body['secret_id']}", headers=h).get_json()
    assert shown["expires_at"] == body["expires_at"] and shown["leaked_at"] is None
    listed = {item["secret_id"]: item for item in http.get(url, headers=h).get_json()["items"]}
    assert listed[by_time["secret_id"]]["expires_at"] == by_time["expires_at"]
    assert listed[manager.tenant.secret_id]["expires_at"] is None
    assert all(set(item) == {"secret_id", "hint", "label", "created_at", "last_used_at", "expires_at", "leaked_at"}
               for item in listed.values())
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.object_id == body["secret_id"])).one()
    assert json.loads(event.details)["expires_at"] == body["expires_at"]
    assert body["client_secret"] not in event.details

    # Its secret authenticates until then, and is refused as expired after.
    clock.shift(7 * DAY + 1)
    refused = call(http, "introspect", manager.tenant, by_time["client_secret"])
    assert "expired" in assert_oauth_error(refused, 401, "invalid_client")["error_description"]
    response = call(http, "introspect", manager.tenant, body["client_secret"])
    assert response.status_code == 200, body_text(response)


def test_api_refuses_bad_expiries_with_a_clear_problem_and_stores_nothing(http, manager):
    h = manager.headers()
    cid = manager.tenant.client_id
    url = f"{API}/clients/{cid}/secrets"
    now = clock.now()
    future = utc(now + DAY).isoformat()
    cases = [
        ({"expires_in_days": 30, "expires_at": future}, 400, "expires_at", "not both"),
        ({"expires_at": utc(now - 1).isoformat()}, 400, "expires_at", "already passed"),
        ({"expires_at": "1999-12-31T23:59:59Z"}, 400, "expires_at", "already passed"),
        ({"expires_at": "9999-12-31T23:59:59-23:59"}, 400, "expires_at", "at most 3650 days"),
        ({"expires_at": "2030-01-31T12:00:00"}, 400, "expires_at", "time zone"),
        ({"expires_at": "soon"}, 400, "expires_at", "ISO 8601"),
        ({"expires_in_days": 0}, 400, "expires_in_days", "from 1 to 3650"),
        ({"expires_in_days": -1}, 400, "expires_in_days", "from 1 to 3650"),
        ({"expires_in_days": 3651}, 400, "expires_in_days", "from 1 to 3650"),
        ({"expires_in_days": 10**40}, 400, "expires_in_days", "from 1 to 3650"),
        ({"expires_in_days": "30"}, 422, "expires_in_days", ""),  # types are strict
        ({"expires_in_days": 1.5}, 422, "expires_in_days", ""),
        ({"expires_in_days": True}, 422, "expires_in_days", ""),
        ({"expires_in_days": None}, 422, "expires_in_days", ""),
        ({"expires_at": None}, 422, "expires_at", ""),
        ({"expires_at": ""}, 422, "expires_at", ""),
        ({"expires_at": 1900000000}, 422, "expires_at", ""),
        ({"expires": "2030-01-01T00:00:00Z"}, 422, "expires", ""),
    ]
    events = created_events(manager.org_id)
    for payload, status, field, needle in cases:
        with case(payload):
            problem = assert_problem(http.post(url, json=payload, headers=h), status, field=field)
            assert needle.lower() in problem.get("detail", "").lower()
            assert [r.secret_id for r in secret_rows(cid)] == [manager.tenant.secret_id]
    for raw, content_type, status in (("{", "application/json", 400), ("30", "text/plain", 415)):
        with case(raw):
            assert_problem(http.post(url, data=raw, headers={**h, "Content-Type": content_type}), status)
    assert [r.secret_id for r in secret_rows(cid)] == [manager.tenant.secret_id]
    assert created_events(manager.org_id) == events


def test_openapi_documents_the_optional_expiry(http):
    document = http.get(f"{API}/openapi.json").get_json()
    operation = document["paths"][f"{API}/clients/{{client_id}}/secrets"]["post"]
    assert operation["requestBody"]["required"] is False
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schema = document["components"]["schemas"][ref]
    assert schema["properties"]["expires_at"]["format"] == "date-time"
    assert schema["properties"]["expires_in_days"]["type"] == "integer"
    assert not schema.get("required")
    created = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "expires_at" in document["components"]["schemas"][created]["required"]
    listed = document["paths"][f"{API}/clients/{{client_id}}/secrets/{{secret_id}}"]["get"]
    item = listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"expires_at", "leaked_at"} <= set(document["components"]["schemas"][item]["required"])


# --- the console --------------------------------------------------------------------------------

def page_text(response) -> str:
    return response.get_data(as_text=True)


def secrets_section(html: str) -> str:
    return html.split('id="secrets"', 1)[1].split('id="keys"', 1)[0]


def test_console_adds_a_secret_with_an_expiry_and_shows_it(console, console_admin):
    from authserver.services.clients import register_client

    client = register_client(console_admin.org_id, "Payments")
    page = f"/console/apps/{client.client_id}"
    now = clock.now()
    response = console.submit(page, page + "/secrets", {"expires_in_days": "30"})
    assert response.status_code == 200
    (row,) = secret_rows(client.client_id)
    assert now + 30 * DAY <= row.expires_at <= clock.now() + 30 * DAY
    html = page_text(response)
    assert "it will not be shown again" in html
    assert f'datetime="{iso(row.expires_at)}"' in html.split('id="new-secret-panel"', 1)[1].split("</section>", 1)[0]
    assert f'datetime="{iso(row.expires_at)}"' in secrets_section(html)

    day = (utc(now) + timedelta(days=90)).date()
    assert console.submit(page, page + "/secrets", {"expires_at": day.isoformat()}).status_code == 200
    (second,) = [r for r in secret_rows(client.client_id) if r.secret_id != row.secret_id]
    assert second.expires_at == int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    listing = secrets_section(page_text(console.get(page)))
    assert "badge" not in listing.split("<table", 1)[1] and 'id="secret-warning"' not in listing  # 30, 90 days


def test_console_refuses_bad_expiries_on_the_form_and_stores_nothing(console, console_admin):
    from authserver.services.clients import register_client

    client = register_client(console_admin.org_id, "Payments")
    page = f"/console/apps/{client.client_id}"
    yesterday = (utc(clock.now()) - timedelta(days=1)).date().isoformat()
    cases = [
        ({"expires_in_days": "30", "expires_at": "2099-01-01"}, "not both"),
        ({"expires_at": yesterday}, "already passed"),
        ({"expires_in_days": "0"}, "from 1 to 3650"),
        ({"expires_in_days": "4000"}, "from 1 to 3650"),
        ({"expires_in_days": "soon"}, "whole number"),
        ({"expires_at": "31/01/2030"}, "ISO 8601"),
    ]
    for data, needle in cases:
        with case(data):
            response = console.submit(page, page + "/secrets", data)
            assert response.status_code == 400
            html = page_text(response)
            assert needle in html and 'class="field-error"' in html
            assert "it will not be shown again" not in html
            assert secret_rows(client.client_id) == []
    # The values typed are kept in the form so they can be corrected.
    html = page_text(console.submit(page, page + "/secrets", {"expires_in_days": "4000"}))
    assert 'value="4000"' in html and 'aria-invalid="true"' in html


def test_console_warns_about_secrets_expiring_within_14_days_and_expired_ones(app, console_admin):
    from authserver.services.clients import register_client

    client = register_client(console_admin.org_id, "Payments")
    page = f"/console/apps/{client.client_id}"
    soon = add_secret(client.client_id, expires_in_days=10)
    later = add_secret(client.client_id, expires_in_days=60)
    never = add_secret(client.client_id)

    def rows_by_secret(html: str) -> dict[str, str]:
        section = secrets_section(html)
        return {sid: section.split(sid, 1)[1].split("</tr>", 1)[0] for sid in (soon.secret_id, later.secret_id,
                                                                               never.secret_id)}

    html = page_text(signed_in(app, console_admin).get(page))
    rows = rows_by_secret(html)
    assert "Expires in 10 days" in rows[soon.secret_id]
    assert "badge" not in rows[later.secret_id] and "badge" not in rows[never.secret_id]
    assert "no expiry" in rows[never.secret_id]
    assert 'id="secret-warning"' in html and "1 secret of this app needs attention" in html

    clock.shift(10 * DAY)  # the console session has ended meanwhile: sign in again
    html = page_text(signed_in(app, console_admin).get(page))
    rows = rows_by_secret(html)
    assert "Expired" in rows[soon.secret_id]
    assert "badge" not in rows[later.secret_id]
    clock.shift(47 * DAY)  # `later` now has 3 days left
    html = page_text(signed_in(app, console_admin).get(page))
    rows = rows_by_secret(html)
    assert "Expires in 3 days" in rows[later.secret_id] and "Expired" in rows[soon.secret_id]
    assert "2 secrets of this app need attention" in html


# --- the default lifetime setting ---------------------------------------------------------------

@pytest.fixture
def ttl_app(tmp_path, sqlite_template, pg_template_ready, backend):
    with in_app_context(make_app(tmp_path, sqlite_template, backend, pg_template_ready,
                                 secret_default_ttl_days=30)) as app:
        yield app


def test_the_default_lifetime_applies_when_no_expiry_is_given(ttl_app):
    http = ttl_app.test_client()
    manager = make_manager(http)
    cid = manager.tenant.client_id
    now = clock.now()
    assert now + 30 * DAY - 5 <= db.session.get(ClientSecret, manager.tenant.secret_id).expires_at <= now + 30 * DAY
    by_service = add_secret(cid)
    assert by_service.expires_at == by_service.created_at + 30 * DAY
    by_api = http.post(f"{API}/clients/{cid}/secrets", headers=manager.headers()).get_json()
    assert by_api["expires_at"] == iso(db.session.get(ClientSecret, by_api["secret_id"]).expires_at)
    assert now + 30 * DAY <= db.session.get(ClientSecret, by_api["secret_id"]).expires_at <= clock.now() + 30 * DAY
    explicit = http.post(f"{API}/clients/{cid}/secrets", json={"expires_in_days": 400}, headers=manager.headers())
    assert db.session.get(ClientSecret, explicit.get_json()["secret_id"]).expires_at >= now + 400 * DAY  # wins

    clock.shift(30 * DAY + 1)
    refused = call(http, "introspect", manager.tenant, by_service.client_secret)
    assert "expired" in assert_oauth_error(refused, 401, "invalid_client")["error_description"]
    response = call(http, "introspect", manager.tenant, explicit.get_json()["client_secret"])
    assert response.status_code == 200, body_text(response)


def test_the_default_lifetime_comes_from_the_environment_for_the_cli(app, tenant):
    now = clock.now()
    new = Cli(app, AUTHSERVER_SECRET_DEFAULT_TTL_DAYS="45").json("secret", "add", tenant.client_id)
    assert now + 45 * DAY <= db.session.get(ClientSecret, new["secret_id"]).expires_at <= clock.now() + 45 * DAY
    assert new["expires_at"] is not None
    assert (
        Cli(app, AUTHSERVER_SECRET_DEFAULT_TTL_DAYS="0").json("secret", "add", tenant.client_id)["expires_at"] is None
    )
    for bad, needle in (("-1", "at least 0"), ("3651", "at most 3650"), ("forever", "integer")):
        with case(bad):
            result = Cli(app, AUTHSERVER_SECRET_DEFAULT_TTL_DAYS=bad).run("secret", "add", tenant.client_id, "--json")
            assert result.exit_code != 0 and result.stdout == ""
            assert "AUTHSERVER_SECRET_DEFAULT_TTL_DAYS" in result.stderr and needle in result.stderr
    assert len(secret_rows(tenant.client_id)) == 3


def test_the_setting_is_validated(tmp_path):
    assert load_settings({"instance_path": str(tmp_path)}).secret_default_ttl_days == 0
    assert (
        load_settings({"instance_path": str(tmp_path), "secret_default_ttl_days": "90"}).secret_default_ttl_days == 90
    )
    for bad in ("-1", "3651", "1.5", "", "never"):
        with case(bad), pytest.raises(ConfigError, match="AUTHSERVER_SECRET_DEFAULT_TTL_DAYS"):
            load_settings({"instance_path": str(tmp_path), "secret_default_ttl_days": bad})


def test_secrets_from_before_expiry_existed_never_expire(http, tenant):
    """Rows without expires_at (every secret before the migration) keep working whatever the time."""
    assert db.session.get(ClientSecret, tenant.secret_id).expires_at is None
    clock.shift(3650 * DAY)
    response = call(http, "introspect", tenant, tenant.client_secret)
    assert response.status_code == 200, body_text(response)
    make_tenant("Later")  # and new secrets still get no expiry without the setting
    assert (
        db.session.scalar(select(func.count()).select_from(ClientSecret).where(ClientSecret.expires_at.is_not(None)))
        == 0
    )
