"""Console sessions kept on the server: the cookie carries only a random id whose SHA-256 hash is stored;
signing out (here or everywhere), a password change and disabling the account end sessions on every
browser; idle timeout and absolute lifetime; admins change their own password and disable or enable
other admins, never themselves nor the last active one. Over HTTP, asserting on what is stored."""
from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from authserver import clock
from authserver.config import ConfigError, load_settings
from authserver.console.auth import SESSION_KEY
from authserver.extensions import db
from authserver.models import Account, AuditEvent, ConsoleSession
from authserver.ratelimit import PASSWORD_CHANGE_FAILURES_PER_ACCOUNT
from authserver.services.accounts import authenticate_user
from authserver.services.clients import list_clients
from authserver.services.sessions import TOUCH_INTERVAL

from ..conftest import ISSUER, make_app
from ..console_support import Console, make_admin, page_forms, signed_in, signed_in_through_the_form

API = "/api/v1"
COOKIE = "authserver_session"
NEW_PASSWORD = "a brand new long passphrase"


# --- helpers ------------------------------------------------------------------------------------

def session_id_of(console: Console) -> str | None:
    with console.http.session_transaction() as session:
        return session.get(SESSION_KEY)


def rows_of(account_id: str) -> list[ConsoleSession]:
    db.session.expire_all()  # requests and the test share one database session: read what is committed
    return list(db.session.scalars(select(ConsoleSession).where(ConsoleSession.account_id == account_id)))


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def copy_cookie(source: Console, target: Console) -> None:
    """Another browser (an attacker's) with a copy of the first one's session cookie."""
    target.http.set_cookie(COOKIE, source.http.get_cookie(COOKIE).value)


def is_signed_in(console: Console) -> bool:
    response = console.get("/console/apps")
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def is_refused(response) -> bool:
    return response.status_code == 303 and response.headers["Location"].startswith("/console/sign-in")


def settings(app):
    return app.extensions["authserver.settings"]


def csrf_token_of(console: Console) -> str:
    (form,) = [f for f in page_forms(console.get("/console/apps/new").get_data(as_text=True))
               if f.posts_to("/console/apps/new")]
    return form.fields["csrf_token"]


@pytest.fixture
def second_admin(app, console_admin):
    """Another admin of the same organization."""
    return make_admin(org_id=console_admin.org_id)


# --- the cookie and what is stored ----------------------------------------------------------------

def test_the_session_id_is_stored_only_as_its_sha256_hash_and_never_logged(app, console_admin, caplog, capfd):
    console = signed_in_through_the_form(app, console_admin)
    session_id = session_id_of(console)
    assert len(session_id) >= 43  # 256 random bits
    # The cookie (signed, not encrypted) names no account or organization: only the session's id.
    raw = console.http.get_cookie(COOKIE).value
    assert set(app.session_interface.get_signing_serializer(app).loads(raw)) <= {
        SESSION_KEY,
        "_permanent",
        "csrf_token",
    }
    (row,) = rows_of(console_admin.account_id)
    assert row.session_hash == hashlib.sha256(session_id.encode()).hexdigest()
    assert row.org_id == console_admin.org_id and row.ip_address == "127.0.0.1"
    assert row.user_agent and row.user_agent.startswith("Werkzeug")
    assert row.expires_at == row.created_at + settings(app).console_session_max_hours * 3600
    stored = json.dumps([[getattr(r, c.name) for c in ConsoleSession.__table__.columns]
                         for r in db.session.scalars(select(ConsoleSession))])
    stored += json.dumps([[e.actor, e.object_id, e.details] for e in db.session.scalars(select(AuditEvent))])
    assert session_id not in stored
    console.submit("/console/apps", "/console/sign-out")
    out, err = capfd.readouterr()
    assert session_id not in caplog.text and session_id not in out and session_id not in err


def test_odd_session_cookies_are_refused_without_an_error(app, console_admin):
    console = Console(app.test_client())
    for value in (12345, "", "x" * 5000, "abc\x00def", ["a", "b"], {"a": 1}, None):
        with console.http.session_transaction() as session:
            session[SESSION_KEY] = value
        assert is_refused(console.get("/console/apps")), value
        assert console.get(f"{API}/clients").status_code == 401, value


def test_signing_in_again_in_a_browser_ends_its_former_session(app, console_admin, second_admin):
    console = signed_in(app, console_admin)
    copy = Console(app.test_client())
    copy_cookie(console, copy)
    former = session_id_of(console)
    response = console.post("/console/sign-in", data={  # from a second tab, still signed in
        "csrf_token": csrf_token_of(console), "email": second_admin.email, "password": second_admin.password})
    assert response.status_code == 303
    assert session_id_of(console) != former
    assert rows_of(console_admin.account_id) == [] and len(rows_of(second_admin.account_id)) == 1
    assert is_refused(copy.get("/console/apps"))
    assert second_admin.email in console.get("/console/apps").get_data(as_text=True)


# --- signing out ----------------------------------------------------------------------------------

def test_a_copied_cookie_is_refused_after_sign_out_elsewhere(app, console_admin):
    browser = signed_in(app, console_admin)
    thief = Console(app.test_client())
    copy_cookie(browser, thief)
    assert is_signed_in(thief)  # a copied cookie works while the session lives...
    assert thief.get(f"{API}/clients").status_code == 200
    form = thief.form("/console/apps/new", "/console/apps/new")  # with a valid CSRF token

    response = browser.submit("/console/apps", "/console/sign-out")
    assert is_refused(response)
    assert rows_of(console_admin.account_id) == []
    # ...and is useless everywhere once its owner signs out: the console and the API's cookie path.
    refused = thief.get(f"{API}/clients")
    assert refused.status_code == 401 and "sign in again" in refused.get_json()["detail"]
    assert is_refused(thief.post("/console/apps/new", data={**form.fields, "name": "Sneaky"}))
    assert list_clients(console_admin.org_id) == []
    assert is_refused(thief.get("/console/apps"))
    (event,) = events("console.signed_out")
    assert (event.actor, event.org_id, event.object_id, event.ip_address) == (
        console_admin.account_id, console_admin.org_id, console_admin.account_id, "127.0.0.1")


def test_sign_out_everywhere_ends_the_sessions_of_every_browser(app, console_admin, second_admin):
    laptop, phone = signed_in(app, console_admin), signed_in(app, console_admin)
    colleague = signed_in(app, second_admin)
    assert len(rows_of(console_admin.account_id)) == 2

    page = laptop.get("/console/account").get_data(as_text=True)
    assert "Sign out everywhere" in page and page.count("This browser") == 1
    response = laptop.submit("/console/account", "/console/sign-out-everywhere")
    assert is_refused(response)
    notice = laptop.get("/console/sign-in").get_data(as_text=True)
    assert "You have signed out everywhere: 2 sessions ended" in notice

    assert rows_of(console_admin.account_id) == []
    assert is_refused(laptop.get("/console/apps")) and is_refused(phone.get("/console/apps"))
    assert phone.get(f"{API}/clients").status_code == 401
    assert is_signed_in(colleague) and len(rows_of(second_admin.account_id)) == 1  # another admin's go on
    (event,) = events("console.signed_out_everywhere")
    assert (event.actor, event.object_id, json.loads(event.details)) == (
        console_admin.account_id, console_admin.account_id, {"sessions_ended": 2})


def test_sign_out_everywhere_needs_the_csrf_token(app, console_admin):
    console = signed_in(app, console_admin)
    form = console.form("/console/account", "/console/sign-out-everywhere")
    assert console.post("/console/sign-out-everywhere").status_code == 400
    assert (
        console.post("/console/sign-out-everywhere", data={"csrf_token": form.fields["csrf_token"] + "x"}).status_code
        == 400
    )
    assert is_signed_in(console) and len(rows_of(console_admin.account_id)) == 1
    assert events("console.signed_out_everywhere") == []


# --- lifetimes --------------------------------------------------------------------------------------

def test_idle_timeout_ends_a_session_left_alone(app, console_admin):
    idle = settings(app).console_session_idle_minutes * 60
    assert idle == 30 * 60  # the default
    console = signed_in(app, console_admin)
    (row,) = rows_of(console_admin.account_id)
    signed_in_at = row.last_seen_at

    clock.shift(TOUCH_INTERVAL - 20)
    assert is_signed_in(console)
    assert rows_of(console_admin.account_id)[0].last_seen_at == signed_in_at  # not written on every request
    clock.shift(20)
    assert is_signed_in(console)
    touched = rows_of(console_admin.account_id)[0].last_seen_at
    assert 0 <= touched - (signed_in_at + TOUCH_INTERVAL) <= 5  # (plus the real seconds the requests took)

    clock.shift(idle - 10)  # used just in time: the idle timeout counts from the last use
    assert is_signed_in(console)
    clock.shift(idle)
    response = console.get("/console/apps")
    assert is_refused(response)
    assert "Your session has ended. Sign in again." in console.get("/console/sign-in").get_data(as_text=True)
    assert rows_of(console_admin.account_id) == []  # a dead session is deleted when met
    assert is_refused(console.get("/console/apps"))
    assert console.sign_in(console_admin).status_code == 303 and is_signed_in(console)


def test_the_api_cookie_path_has_the_same_idle_timeout(app, console_admin):
    console = signed_in(app, console_admin)
    assert console.get(f"{API}/clients").status_code == 200
    clock.shift(settings(app).console_session_idle_minutes * 60)
    assert console.get(f"{API}/clients").status_code == 401
    assert rows_of(console_admin.account_id) == []


def test_absolute_lifetime_ends_even_a_busy_session(app, console_admin):
    lifetime = settings(app).console_session_max_hours * 3600
    assert lifetime == 12 * 3600  # the default
    console = signed_in(app, console_admin)
    (row,) = rows_of(console_admin.account_id)
    step = 20 * 60  # busy: a request every 20 minutes, well inside the idle timeout
    elapsed = 0
    while elapsed + step < lifetime:
        clock.shift(step)
        elapsed += step
        assert is_signed_in(console), elapsed
    clock.shift(lifetime - elapsed)
    assert clock.now() >= row.expires_at
    assert is_refused(console.get("/console/apps"))
    assert rows_of(console_admin.account_id) == []


def test_lifetimes_are_settings(tmp_path, sqlite_template):
    app = make_app(tmp_path, sqlite_template, console_session_idle_minutes=5, console_session_max_hours=1)
    with app.app_context():
        admin = make_admin()
        console = signed_in(app, admin)
        (row,) = rows_of(admin.account_id)
        assert row.expires_at - row.created_at == 3600
        assert app.permanent_session_lifetime.total_seconds() == 3600  # the cookie never outlives a session
        clock.shift(4 * 60)
        assert is_signed_in(console)
        clock.shift(5 * 60)
        assert is_refused(console.get("/console/apps"))
        db.session.remove()
        db.engine.dispose()
    clock.reset()


@pytest.mark.parametrize("key", ["CONSOLE_SESSION_IDLE_MINUTES", "CONSOLE_SESSION_MAX_HOURS"])
def test_lifetime_settings_must_be_positive_whole_numbers(tmp_path, monkeypatch, key):
    monkeypatch.setenv("AUTHSERVER_" + key, "45")
    assert getattr(load_settings({"instance_path": str(tmp_path)}), key.lower()) == 45
    for bad, message in (("0", "at least 1"), ("-3", "at least 1"), ("ten", "must be an integer"),
                         ("1.5", "must be an integer"), ("99999999999999999999", "at most")):
        monkeypatch.setenv("AUTHSERVER_" + key, bad)
        with pytest.raises(ConfigError) as refused:
            load_settings({"instance_path": str(tmp_path)})
        assert str(refused.value).startswith(f"AUTHSERVER_{key} ") and message in str(refused.value), bad


def test_purge_deletes_dead_sessions_only(app, console_admin, second_admin):
    from authserver.cli import purge_once

    signed_in(app, console_admin)
    clock.shift(settings(app).console_session_idle_minutes * 60 + 1)
    live = signed_in(app, second_admin)
    result = purge_once()
    assert result["console_sessions"] == 1 and {"access_tokens", "used_assertions"} <= set(result)
    assert rows_of(console_admin.account_id) == [] and len(rows_of(second_admin.account_id)) == 1
    assert is_signed_in(live)
    clock.shift(settings(app).console_session_max_hours * 3600)
    assert purge_once()["console_sessions"] == 1
    assert rows_of(second_admin.account_id) == []


# --- changing one's own password --------------------------------------------------------------------

def change_password(console: Console, current: str, new: str, again: str | None = None):
    return console.submit("/console/account/password", "/console/account/password", {
        "current_password": current, "new_password": new, "new_password_again": new if again is None else again})


def test_a_password_change_ends_the_other_sessions_and_the_old_password_fails(app, console_admin):
    here, elsewhere = signed_in(app, console_admin), signed_in(app, console_admin)
    copy = Console(app.test_client())
    copy_cookie(here, copy)  # a copy of this very browser's cookie
    old_id = session_id_of(here)

    response = change_password(here, console_admin.password, NEW_PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/console/account"
    page = here.get("/console/account").get_data(as_text=True)
    assert "Your password is changed. Every other session of your account has ended." in page
    assert is_signed_in(here) and session_id_of(here) != old_id  # this browser goes on, with a new id
    assert is_refused(elsewhere.get("/console/apps"))
    assert is_refused(copy.get("/console/apps"))  # the old id is dead too
    (row,) = rows_of(console_admin.account_id)
    assert row.session_hash == hashlib.sha256(session_id_of(here).encode()).hexdigest()

    assert Console(app.test_client()).sign_in(console_admin).status_code == 400  # the old password
    assert Console(app.test_client()).sign_in(console_admin, password=NEW_PASSWORD).status_code == 303
    (event,) = events("account.password_changed")
    assert (event.actor, event.object_id, json.loads(event.details)) == (
        console_admin.account_id, console_admin.account_id, {"other_sessions_ended": 1})
    assert console_admin.password not in event.details and NEW_PASSWORD not in event.details


@pytest.mark.parametrize("current, new, again, field, message", [
    ("not the password at all", NEW_PASSWORD, None, "current_password", "The current password is not correct."),
    ("", NEW_PASSWORD, None, "current_password", "The current password is not correct."),
    (None, "too short", None, "new_password", "at least 12 characters"),
    (None, "x" * 1025, None, "new_password", "at most 1024 characters"),
    (None, NEW_PASSWORD, NEW_PASSWORD + "!", "new_password_again", "The two new passwords are not the same."),
    (None, None, None, "new_password", "must differ from the current one"),
])
def test_a_refused_password_change_changes_nothing(app, console_admin, current, new, again, field, message):
    here, elsewhere = signed_in(app, console_admin), signed_in(app, console_admin)
    before = db.session.get(Account, console_admin.account_id).password_hash
    current = console_admin.password if current is None else current
    new = console_admin.password if new is None else new
    response = change_password(here, current, new, again)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in html and f'id="{field}-error"' in html
    db.session.expire_all()
    assert db.session.get(Account, console_admin.account_id).password_hash == before
    assert is_signed_in(here) and is_signed_in(elsewhere) and len(rows_of(console_admin.account_id)) == 2
    assert events("account.password_changed") == []
    refusals = events("account.password_change_refused")
    assert len(refusals) == (1 if field == "current_password" else 0)


def test_wrong_current_passwords_are_limited_per_account(app, console_admin):
    from ..console_support import start_of_a_rate_window

    start_of_a_rate_window()
    console = signed_in(app, console_admin)
    for _ in range(PASSWORD_CHANGE_FAILURES_PER_ACCOUNT):
        assert change_password(console, "a wrong guess here", NEW_PASSWORD).status_code == 400
    refused = change_password(console, console_admin.password, NEW_PASSWORD)  # right, but too late
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many wrong current passwords" in refused.get_data(as_text=True)
    assert authenticate_user(console_admin.email, console_admin.password) is not None
    clock.shift(61)
    assert change_password(console, console_admin.password, NEW_PASSWORD).status_code == 303


def test_a_password_change_needs_the_csrf_token(app, console_admin):
    console = signed_in(app, console_admin)
    response = console.post("/console/account/password", data={
        "current_password": console_admin.password, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD})
    assert response.status_code == 400 and "This form has expired" in response.get_data(as_text=True)
    assert authenticate_user(console_admin.email, console_admin.password) is not None


def test_the_operators_password_reset_ends_every_session(app, console_admin):
    """`authserver account set-password`, the command line's door, ends the account's sessions too."""
    laptop, phone = signed_in(app, console_admin), signed_in(app, console_admin)
    env = {"AUTHSERVER_INSTANCE_PATH": app.instance_path, "AUTHSERVER_ISSUER": ISSUER,
           "AUTHSERVER_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"]}
    from authserver.cli import main

    result = CliRunner().invoke(main, ["account", "set-password", console_admin.account_id, "--password-stdin",
                                       "--json"], input=NEW_PASSWORD + "\n", env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"account_id": console_admin.account_id, "password_set": True}
    assert rows_of(console_admin.account_id) == []
    assert is_refused(laptop.get("/console/apps")) and is_refused(phone.get("/console/apps"))
    (event,) = events("account.password_set")
    assert json.loads(event.details) == {"sessions_ended": 2} and event.actor == "cli"


# --- disabling and enabling admins --------------------------------------------------------------------

def test_disabling_an_admin_ends_their_sessions_and_enabling_lets_them_sign_in(app, console_admin, second_admin):
    me = signed_in(app, console_admin)
    their_laptop, their_phone = signed_in(app, second_admin), signed_in(app, second_admin)
    page = me.get("/console/admins").get_data(as_text=True)
    assert second_admin.email in page and console_admin.email in page

    action = f"/console/admins/{second_admin.account_id}/disable"
    confirm = me.get(action)
    assert confirm.status_code == 200 and "signed out of the console everywhere" in confirm.get_data(as_text=True)
    response = me.submit(action, action)
    assert response.status_code == 303 and response.headers["Location"] == "/console/admins"
    assert "they are signed out everywhere" in me.get("/console/admins").get_data(as_text=True)

    assert rows_of(second_admin.account_id) == []
    assert is_refused(their_laptop.get("/console/apps")) and is_refused(their_phone.get("/console/apps"))
    assert Console(app.test_client()).sign_in(second_admin).status_code == 400
    db.session.expire_all()
    assert db.session.get(Account, second_admin.account_id).disabled_at is not None
    (event,) = events("account.disabled")
    assert (event.actor, event.object_id, json.loads(event.details)) == (
        console_admin.account_id, second_admin.account_id, {"sessions_ended": 2})
    assert is_signed_in(me)

    enable = f"/console/admins/{second_admin.account_id}/enable"
    assert me.post(enable).status_code == 400  # CSRF
    db.session.expire_all()
    assert db.session.get(Account, second_admin.account_id).disabled_at is not None
    response = me.submit("/console/admins", enable)
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Account, second_admin.account_id).disabled_at is None
    assert events("account.enabled")[0].actor == console_admin.account_id
    assert Console(app.test_client()).sign_in(second_admin).status_code == 303


def test_disabling_needs_the_csrf_token(app, console_admin, second_admin):
    me, them = signed_in(app, console_admin), signed_in(app, second_admin)
    assert me.post(f"/console/admins/{second_admin.account_id}/disable").status_code == 400
    assert is_signed_in(them) and len(rows_of(second_admin.account_id)) == 1


def test_an_admin_cannot_disable_themselves_nor_the_last_active_admin(app, console_admin, second_admin):
    me = signed_in(app, console_admin)
    page = me.get("/console/admins").get_data(as_text=True)
    action = f"/console/admins/{console_admin.account_id}/disable"
    other = f"/console/admins/{second_admin.account_id}/disable"
    assert action not in page and other in page  # no Disable button for oneself
    token = me.form("/console/admins", other).fields["csrf_token"]
    response = me.post(action, data={"csrf_token": token})  # a request the page never offers
    assert response.status_code == 303
    assert "You cannot disable your own account" in me.get("/console/admins").get_data(as_text=True)

    # Once the other admin is disabled, the guard that keeps an active admin answers the same request.
    assert me.submit(other, other).status_code == 303
    assert me.post(action, data={"csrf_token": token}).status_code == 303
    assert "last active administrator" in me.get("/console/admins").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Account, console_admin.account_id).disabled_at is None
    assert is_signed_in(me) and len(rows_of(console_admin.account_id)) == 1
    assert [e.object_id for e in events("account.disabled")] == [second_admin.account_id]


def test_admins_of_another_organization_or_other_accounts_are_not_found(app, console_admin, second_admin):
    from authserver.services.accounts import create_account

    outsider = make_admin(org_name="Globex")
    theirs = signed_in(app, outsider)
    member = create_account(console_admin.org_id, "Member", "user", email="member@example.com")
    service = create_account(console_admin.org_id, "worker", "service")
    me = signed_in(app, console_admin)
    token = me.form("/console/admins", f"/console/admins/{second_admin.account_id}/disable").fields["csrf_token"]
    for account_id in (outsider.account_id, member.account_id, service.account_id, "acc_nope", "x" * 300):
        for verb in ("disable", "enable"):
            response = me.post(f"/console/admins/{account_id}/{verb}", data={"csrf_token": token})
            assert response.status_code == 404, (account_id, verb)
    assert is_signed_in(theirs) and len(rows_of(outsider.account_id)) == 1
    db.session.expire_all()
    assert all(db.session.get(Account, a).disabled_at is None
               for a in (outsider.account_id, member.account_id, service.account_id))


def test_disabling_through_the_management_api_ends_the_sessions_too(app, console_admin, second_admin):
    me, them = signed_in(app, console_admin), signed_in(app, second_admin)
    token = csrf_token_of(me)
    url = f"{API}/accounts/{second_admin.account_id}"
    assert me.http.patch(url, json={"disabled": True}).status_code == 403  # the cookie path needs CSRF
    assert len(rows_of(second_admin.account_id)) == 1
    response = me.http.patch(url, json={"disabled": True}, headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["disabled"] is True
    assert rows_of(second_admin.account_id) == [] and is_refused(them.get("/console/apps"))
    assert them.get(f"{API}/clients").status_code == 401


# --- audit ------------------------------------------------------------------------------------------

def test_sign_in_and_out_are_audited_without_secrets(app, console_admin):
    console = signed_in(app, console_admin)
    session_id = session_id_of(console)
    console.submit("/console/apps", "/console/sign-out")
    audited = [e for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
               if e.action.startswith("console.")]
    assert [(e.action, e.actor, e.ip_address) for e in audited] == [
        ("console.signed_in", console_admin.account_id, "127.0.0.1"),
        ("console.signed_out", console_admin.account_id, "127.0.0.1"),
    ]
    for event in audited:
        assert session_id not in event.details and console_admin.password not in event.details
    page = signed_in(app, console_admin).get("/console/audit").get_data(as_text=True)
    assert "console.signed_out" in page
