"""Console sign-in and sessions: success, failure, throttling, fixation, re-checks, sign-out, cookie flags."""

from authserver import clock
from authserver.console.auth import FAILURES_PER_ADDRESS, FAILURES_PER_EMAIL_AND_ADDRESS, SESSION_KEY
from authserver.extensions import db
from authserver.models import Account, ConsoleSession
from authserver.services.sessions import hash_session_id

from ..conftest import make_app
from ..console_support import Console, make_admin, page_forms, signed_in, start_of_a_rate_window


def session_of(http) -> dict:
    with http.session_transaction() as session:
        return dict(session)


def test_pages_redirect_to_sign_in_with_next(http):
    response = http.get("/console/apps")
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/sign-in?next=/console/apps"


def test_sign_in_page_is_an_accessible_form_with_a_csrf_token(http):
    response = http.get("/console/sign-in")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<label for="email">Email</label>' in html and '<label for="password">Password</label>' in html
    assert 'autocomplete="current-password"' in html
    (form,) = page_forms(html)
    assert form.method == "post" and form.fields["csrf_token"]


def test_sign_in_success_puts_only_a_session_id_in_a_fresh_permanent_cookie(app, console_admin):
    console = Console(app.test_client())
    with console.http.session_transaction() as session:
        session["planted"] = "by an attacker"  # fixation: nothing from before sign-in may survive
        session[SESSION_KEY] = "chosen-by-an-attacker"
    response = console.sign_in(console_admin)
    assert response.status_code == 303 and response.headers["Location"] == "/console/apps"
    stored = session_of(console.http)
    assert "account_id" not in stored and "org_id" not in stored and "planted" not in stored
    assert stored[SESSION_KEY] != "chosen-by-an-attacker"
    assert stored.get("_permanent") is True
    row = db.session.get(ConsoleSession, hash_session_id(stored[SESSION_KEY]))
    assert (row.account_id, row.org_id) == (console_admin.account_id, console_admin.org_id)
    page = console.get("/console/apps").get_data(as_text=True)
    assert console_admin.email in page and "Sign out" in page


def test_session_cookie_is_httponly_and_samesite_lax(app, console_admin):
    console = Console(app.test_client())
    response = console.sign_in(console_admin)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert "Secure" not in cookie  # the test issuer is http://


def test_session_cookie_is_secure_when_the_issuer_is_https(tmp_path, sqlite_template):
    app = make_app(tmp_path, sqlite_template, issuer="https://auth.example.com")
    with app.app_context():
        console_admin = make_admin()
        response = Console(app.test_client()).sign_in(console_admin)
        assert "Secure" in response.headers["Set-Cookie"]
        db.session.remove()


def test_sign_in_redirects_to_a_safe_next_only(app, console_admin):
    console = Console(app.test_client())
    form = console.form("/console/sign-in?next=/console/audit", "/console/sign-in")
    assert form.fields["next"] == "/console/audit"
    response = console.post(
        "/console/sign-in", data={**form.fields, "email": console_admin.email, "password": console_admin.password}
    )
    assert response.headers["Location"] == "/console/audit"
    for target in ("//evil.example/console/", "https://evil.example/", "/console/..\\evil", "/elsewhere"):
        other = Console(app.test_client())
        form = other.form("/console/sign-in", "/console/sign-in")
        response = other.post("/console/sign-in", data={**form.fields, "next": target, "email": console_admin.email,
                                                            "password": console_admin.password})
        assert response.headers.get("Location") == "/console/apps", (
            target,
            response.status_code,
            response.get_data(as_text=True)[-1500:],
        )


def test_wrong_password_is_refused_with_a_readable_message_and_no_session(app, console_admin):
    console = Console(app.test_client())
    response = console.sign_in(console_admin, password="not the password")
    assert response.status_code == 400
    assert "The email address or password is not correct." in response.get_data(as_text=True)
    assert SESSION_KEY not in session_of(console.http)
    assert console.get("/console/apps").status_code == 303


def test_unknown_email_gets_the_same_message(app):
    response = Console(app.test_client()).submit(
        "/console/sign-in", "/console/sign-in", {"email": "nobody@example.com", "password": "whatever it is"})
    assert response.status_code == 400
    assert "The email address or password is not correct." in response.get_data(as_text=True)


def test_a_user_who_is_not_an_admin_cannot_use_the_console(app, console_admin):
    member = make_admin(org_id=console_admin.org_id, is_admin=False)
    console = Console(app.test_client())
    response = console.sign_in(member)
    assert response.status_code == 403
    assert "not an organization admin" in response.get_data(as_text=True)
    assert SESSION_KEY not in session_of(console.http)


def test_a_disabled_admin_cannot_sign_in(app, console_admin):
    from authserver.services.accounts import disable_account

    make_admin(org_id=console_admin.org_id)  # the organization's last admin cannot be disabled
    disable_account(console_admin.account_id)
    response = Console(app.test_client()).sign_in(console_admin)
    assert response.status_code == 400


def test_failures_are_throttled_per_email_and_address_even_for_the_right_password(app, console_admin):
    start_of_a_rate_window()
    console = Console(app.test_client())
    for _ in range(FAILURES_PER_EMAIL_AND_ADDRESS):
        assert console.sign_in(console_admin, password="wrong password!").status_code == 400
    response = console.sign_in(console_admin)  # correct, but this address's budget for the email is spent
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)
    assert SESSION_KEY not in session_of(console.http)
    # The rightful admin, from their own address, is not locked out by someone guessing at their email.
    rightful = Console(app.test_client())
    form = rightful.form("/console/sign-in", "/console/sign-in")
    elsewhere = rightful.post("/console/sign-in", data={**form.fields, "email": console_admin.email,
                                                        "password": console_admin.password},
                              environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert elsewhere.status_code == 303
    # Another email from the same address is not blocked by this one's failures.
    other = make_admin(org_id=console_admin.org_id)
    assert console.sign_in(other).status_code == 303
    # The window passes and the right password works again.
    clock.shift(61)
    assert Console(app.test_client()).sign_in(console_admin).status_code == 303


def test_failures_are_throttled_per_address(app, console_admin):
    start_of_a_rate_window()
    console = Console(app.test_client())
    for i in range(FAILURES_PER_ADDRESS):
        response = console.submit("/console/sign-in", "/console/sign-in",
                                  {"email": f"guess{i}@example.com", "password": "guessing passwords"})
        assert response.status_code == 400
    response = console.sign_in(console_admin)
    assert response.status_code == 429
    # Another address is unaffected.
    form = console.form("/console/sign-in", "/console/sign-in")
    response = console.post(
        "/console/sign-in",
        data={**form.fields, "email": console_admin.email, "password": console_admin.password},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert response.status_code == 303


def test_successful_sign_ins_are_not_counted(app, console_admin):
    start_of_a_rate_window()
    for _ in range(FAILURES_PER_EMAIL_AND_ADDRESS + 2):
        assert Console(app.test_client()).sign_in(console_admin).status_code == 303


def test_every_request_rechecks_the_account(app, console_admin):
    console = signed_in(app, console_admin)
    assert console.get("/console/apps").status_code == 200
    account = db.session.get(Account, console_admin.account_id)
    account.is_admin = False
    db.session.commit()
    response = console.get("/console/apps")
    assert response.status_code == 303 and response.headers["Location"].startswith("/console/sign-in")
    assert SESSION_KEY not in session_of(console.http)


def test_disabling_the_admin_ends_the_session(app, console_admin):
    from authserver.services.accounts import disable_account

    console = signed_in(app, console_admin)
    make_admin(org_id=console_admin.org_id)  # the organization's last admin cannot be disabled
    disable_account(console_admin.account_id)
    assert console.get("/console/accounts").status_code == 303


def test_a_deleted_account_ends_the_session(app, console_admin):
    console = signed_in(app, console_admin)
    db.session.delete(db.session.get(Account, console_admin.account_id))
    db.session.commit()
    assert console.get("/console/apps").status_code == 303


def test_a_session_id_the_server_never_issued_is_refused(app, console_admin):
    other = make_admin(org_name="Globex")
    console = signed_in(app, console_admin)
    with console.http.session_transaction() as session:
        session["org_id"] = other.org_id  # names from the former cookie layout mean nothing now
        session[SESSION_KEY] = session[SESSION_KEY][:-2] + "xx"  # a session id the server never issued
    assert console.get("/console/apps").status_code == 303
    assert SESSION_KEY not in session_of(console.http)


def test_sign_out_ends_the_session(console):
    response = console.submit("/console/apps", "/console/sign-out")
    assert response.status_code == 303 and response.headers["Location"] == "/console/sign-in"
    assert SESSION_KEY not in session_of(console.http)
    assert "You have signed out." in console.get("/console/sign-in").get_data(as_text=True)
    assert console.get("/console/apps").status_code == 303


def test_sign_out_without_csrf_token_is_refused(console):
    response = console.post("/console/sign-out")
    assert response.status_code == 400
    assert console.get("/console/apps").status_code == 200


def test_signed_in_admin_visiting_sign_in_goes_to_apps(console):
    response = console.get("/console/sign-in")
    assert response.status_code == 303 and response.headers["Location"] == "/console/apps"


def test_console_pages_carry_protective_headers(console):
    response = console.get("/console/apps")
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_static_files_are_local_and_need_no_session(http):
    for name, kind in (("console.css", "text/css"), ("console.js", "javascript")):
        response = http.get(f"/console/static/{name}")
        assert response.status_code == 200 and kind in response.content_type
    html = http.get("/console/sign-in").get_data(as_text=True)
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html


def test_sign_ins_failures_and_sign_outs_are_audited_in_the_accounts_organization(app, console_admin):
    from sqlalchemy import select

    from authserver.models import AuditEvent

    console = Console(app.test_client())
    assert console.sign_in(console_admin, password="wrong password!").status_code == 400
    assert console.sign_in(console_admin).status_code == 303
    console.submit("/console/apps", "/console/sign-out")
    unknown = Console(app.test_client()).submit("/console/sign-in", "/console/sign-in",
                                                {"email": "nobody@example.com", "password": "guessing passwords"})
    assert unknown.status_code == 400
    events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("console.%"))
                                     .order_by(AuditEvent.id)))
    assert [(e.action, e.org_id, e.object_id) for e in events] == [
        ("console.sign_in_failed", console_admin.org_id, console_admin.account_id),
        ("console.signed_in", console_admin.org_id, console_admin.account_id),
        ("console.signed_out", console_admin.org_id, console_admin.account_id),
    ]  # the unknown email is recorded in no organization
    assert events[0].actor == "anonymous" and events[1].actor == console_admin.account_id
    assert all("password" not in e.details for e in events)
