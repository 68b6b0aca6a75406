"""Helpers for console tests: an org admin, and a test client that submits the forms the pages render."""
from __future__ import annotations

import functools
import io
import secrets
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

from PIL import Image

ADMIN_PASSWORD = "correct horse battery staple"


@dataclass
class Admin:
    org_id: str
    account_id: str
    email: str
    password: str = ADMIN_PASSWORD


@functools.cache
def _admin_password_hash() -> str:
    """ADMIN_PASSWORD hashed once per process with the service's own hasher (argon2id, the library's
    recommended cost: a fifth of a second of both cores per hash)."""
    from authserver.services import accounts

    return accounts._password_hasher.hash(ADMIN_PASSWORD)


def create_user_with_admin_password(org_id: str, name: str, email: str, **kwargs):
    """create_account(..., password=ADMIN_PASSWORD) for fixtures: the same account, audit event and
    argon2id hash of the same password, but the hash is computed once per process instead of once per
    test. Tests of setting a password itself call create_account / set_password directly."""
    from authserver.extensions import db
    from authserver.services.accounts import create_account

    account = create_account(org_id, name, "user", email=email, **kwargs)
    account.password_hash = _admin_password_hash()
    db.session.commit()
    return account


def make_admin(org_id: str | None = None, org_name: str = "Acme", email: str | None = None, **kwargs) -> Admin:
    from authserver.services.organizations import create_organization

    from .conftest import one_transaction

    email = email or f"admin-{secrets.token_hex(4)}@example.com"
    with one_transaction():
        if org_id is None:
            org_id = create_organization(org_name).org_id
        account = create_user_with_admin_password(org_id, "Org admin", email, is_admin=kwargs.pop("is_admin", True),
                                                  **kwargs)
        return Admin(org_id, account.account_id, email)


@dataclass
class Form:
    action: str
    method: str
    enctype: str
    fields: dict = field(default_factory=dict)
    formactions: list = field(default_factory=list)  # submit buttons that post the form elsewhere

    def posts_to(self, action: str) -> bool:
        return any(path_of(target).split("#")[0] == action for target in (self.action, *self.formactions))


class FormParser(HTMLParser):
    """Every <form> of a page with its hidden inputs."""

    def __init__(self):
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._current = Form(attrs.get("action") or "", (attrs.get("method") or "get").lower(),
                                 attrs.get("enctype") or "application/x-www-form-urlencoded")
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attrs.get("type") == "hidden" and attrs.get("name"):
            self._current.fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "button" and self._current is not None and attrs.get("formaction"):
            self._current.formactions.append(attrs["formaction"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def page_forms(html: str) -> list[Form]:
    parser = FormParser()
    parser.feed(html)
    return parser.forms


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Console:
    """A browser-like client: GET a page, find the form that posts to an action, submit it with its
    hidden fields (the CSRF token among them) plus the test's fields."""

    def __init__(self, http):
        self.http = http

    @staticmethod
    def _forget_cached_token():
        # The test's pushed app context is shared by every request, and Flask-WTF caches the CSRF
        # token of the session in `g`; a real server starts each request with an empty `g`.
        from flask import g, has_app_context

        if has_app_context():
            g.pop("csrf_token", None)

    def get(self, path: str, **kwargs):
        self._forget_cached_token()
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs):
        self._forget_cached_token()
        return self.http.post(path, **kwargs)

    def form(self, page: str, action: str) -> Form:
        response = self.get(page)
        assert response.status_code == 200, (page, response.status_code)
        candidates = [
            f for f in page_forms(response.get_data(as_text=True)) if f.method == "post" and f.posts_to(action)
        ]
        assert candidates, f"no POST form to {action} on {page}"
        form = candidates[0]
        assert form.fields.get("csrf_token"), f"the form to {action} on {page} has no CSRF token"
        return form

    def submit(self, page: str, action: str, data: dict | None = None, files: dict | None = None, **kwargs):
        form = self.form(page, action)
        payload = {**form.fields, **(data or {})}
        if files:
            payload.update({name: (io.BytesIO(content), filename) for name, (filename, content) in files.items()})
            return self.post(action, data=payload, content_type="multipart/form-data", **kwargs)
        return self.post(action, data=payload, **kwargs)

    def sign_in(self, admin: Admin, password: str | None = None):
        return self.submit("/console/sign-in", "/console/sign-in",
                           {"email": admin.email, "password": password if password is not None else admin.password})


def signed_in_through_the_form(app, admin: Admin) -> Console:
    """A console signed in as a person does: the sign-in page's form, the password checked (argon2id)."""
    console = Console(app.test_client())
    response = console.sign_in(admin)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return console


def signed_in(app, admin: Admin) -> Console:
    """A console signed in as `admin`, for tests of what comes after signing in: the session is opened by
    the service the sign-in page calls once the password is checked (the same row, audit event and
    cookie), without the page's argon2id verification (a tenth of a second of CPU). Tests of signing in
    itself use `signed_in_through_the_form` or `Console.sign_in`."""
    from authserver.console.auth import SESSION_KEY
    from authserver.extensions import db
    from authserver.models import Account
    from authserver.services import sessions

    console = Console(app.test_client())
    account = db.session.get(Account, admin.account_id)
    assert account is not None and account.is_admin and account.password_hash, admin
    new = sessions.start_session(account, user_agent=console.http.environ_base["HTTP_USER_AGENT"],
                                 ip_address="127.0.0.1")
    with console.http.session_transaction() as cookie:
        cookie.clear()
        cookie[SESSION_KEY] = new.session_id
        cookie.permanent = True
    return console


def png_bytes(size=(32, 32), color="red", fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


def start_of_a_rate_window() -> None:
    """Move the clock forward to the start of the next fixed rate-limit window, so a test's attempts share one.

    Forward, never back: Redis expires a window's counter at the window's end as the server's clock tells it
    (EXPIREAT), and Redis keeps real time. A clock moved back to the start of the current window put that end
    as little as a second into the real future, so the counter could vanish halfway through a test."""
    from authserver import clock
    from authserver.ratelimit import WINDOW

    clock.shift(WINDOW - clock.now() % WINDOW - time.time() % 1)
