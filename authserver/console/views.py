"""Routes of the developer console. Each view parses the form, calls one service, renders or redirects."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .. import clock
from ..crypto.keys import unsafe_to_echo
from ..errors import DomainError, InvalidInput, NotFound
from ..services.accounts import (
    PASSWORD_MIN,
    create_account,
    disable_account,
    disable_admin,
    enable_account,
    get_account,
    get_admin,
    list_accounts,
    list_admins,
)
from ..services.apis import (
    IDENTIFIER_MAX,
    SCOPE_DESCRIPTION_MAX,
    add_scope,
    bind_client,
    bound_clients,
    create_api,
    delete_api,
    deletion_impact,
    get_api,
    get_owned_api,
    grant_client,
    list_apis,
    list_grants,
    org_grants_of_api,
    remove_scope,
    scopes_of,
    unbind_client,
    ungrant_client,
    update_api,
)
from ..services.audit import action_label, event_choices, find_events
from ..services.audit import make_filter as make_audit_filter
from ..services.client_keys import add_key, delete_key, delete_key_url, get_key, key_url_status, list_keys, set_key_url
from ..services.client_secrets import (
    EXPIRY_WARNING_DAYS,
    LABEL_MAX,
    STATE_ACTIVE,
    add_secret,
    days_left,
    delete_secret,
    get_secret,
    hint_text,
    list_secrets,
    secret_state,
)
from ..services.clients import delete_client, get_client, list_clients, register_client, update_client
from ..services.common import DESCRIPTION_MAX, NAME_MAX, SCOPE_TOKEN_MAX, Actor, current_settings
from ..services.icons import ICON_MAX_BYTES
from ..services.organizations import get_organization
from ..services.sessions import list_sessions
from . import auth
from .feedback import FormErrors, attempt, error_page_text, flash_errors, form_errors

bp = Blueprint(
    "console", __name__, url_prefix="/console",
    template_folder="templates", static_folder="static", static_url_path="/static",
)

PUBLIC_ENDPOINTS = {"console.sign_in", "console.static"}
AUDIT_PAGE_SIZE = 50
# Everything the console loads comes from this origin; no inline script, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
APP_FIELDS = ("name", "description", "icon")
API_FIELDS = ("name", "identifier", "scopes")
KEY_FIELDS = ("key", "kid")
SECRET_FIELDS = ("label", "expires_in_days", "expires_at")


# --- request plumbing -------------------------------------------------------------------------

@bp.before_request
def require_admin():
    g.admin = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    admin = auth.signed_in_admin()
    if admin is None:
        if g.get("session_ended"):
            flash("Your session has ended. Sign in again.", "error")
        wanted = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for(".sign_in", next=wanted), 303)
    g.admin = admin
    g.org = get_organization(admin.org_id)
    return None


@bp.after_request
def security_headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def format_time(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def audit_value(value) -> str:
    """One value of an audit event's details, as people read it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) or "—"
    if value is None or value == "":
        return "—"
    return str(value)


@bp.context_processor
def template_helpers() -> dict:
    return {
        "format_time": format_time,
        "audit_value": audit_value,
        "iso_time": clock.isoformat,
        "NAME_MAX": NAME_MAX,
        "DESCRIPTION_MAX": DESCRIPTION_MAX,
        "ICON_MAX_KIB": ICON_MAX_BYTES // 1024,
        "IDENTIFIER_MAX": IDENTIFIER_MAX,
        "SCOPE_TOKEN_MAX": SCOPE_TOKEN_MAX,
        "SCOPE_DESCRIPTION_MAX": SCOPE_DESCRIPTION_MAX,
        "app_deletion_message": app_deletion_message,
        "secret_deletion_message": secret_deletion_message,
        "key_deletion_message": key_deletion_message,
        "key_url_removal_message": key_url_removal_message,
        "scope_removal_message": scope_removal_message,
        "unbind_message": unbind_message,
        "PASSWORD_MIN": PASSWORD_MIN,
        "LABEL_MAX": LABEL_MAX,
        "hint_text": hint_text,
    }


def actor() -> Actor:
    return Actor(g.admin.account_id, request.remote_addr)


def org_id() -> str:
    return g.admin.org_id


def safe_next(target: str | None) -> str | None:
    """Only console paths of this site: never another host (open redirect)."""
    if not target or not target.startswith("/console/") or "//" in target or "\\" in target:
        return None
    return target


def uploaded_icon() -> bytes | None:
    upload = request.files.get("icon")
    if upload is None or not upload.filename:
        return None
    return upload.read(ICON_MAX_BYTES + 1)  # one byte more than allowed is enough to refuse it


def see_other(endpoint: str, **values) -> Response:
    return redirect(url_for(endpoint, **values), 303)  # type: ignore[return-value]  # Flask's redirect: a Response


def page(template: str, status: int = 200, **context):
    for name, values in context.items():  # forms shown again after an error keep what was typed, but no secret
        if (name == "form" or name.endswith("_form")) and isinstance(values, dict):
            context[name] = {field: "" if unsafe_to_echo(value) else value for field, value in values.items()}
    return render_template(f"console/{template}", **context), status


# --- what a destructive action does, and what it does not: one text for the dialog and the page ---

def token_lifetime() -> str:
    """The access-token lifetime in words: the longest an already-issued token stays valid."""
    ttl = current_settings().access_token_ttl
    for unit, seconds in (("hour", 3600), ("minute", 60)):
        if ttl % seconds == 0:
            return plural(ttl // seconds, unit, unit + "s")
    return plural(ttl, "second", "seconds")


def app_deletion_message(client) -> str:
    # services.clients.delete_client deletes the token records too: introspection answers inactive at once.
    return (f"“{client.name}”, its secrets, its public keys, its key URL and its API access are deleted: it cannot "
            "authenticate or get a token from the very next request. The access tokens it already holds "
            "introspect as inactive at once, but an API that verifies tokens offline (signature and expiry only) "
            f"accepts them until they expire, at most {token_lifetime()} after they were issued. The "
            "organization's service accounts, other apps and audit log are not affected. This cannot be undone.")


def secret_deletion_message(client, secret) -> str:
    ids = f"{secret.secret_id}, {hint_text(secret.hint)}"
    name = f"“{secret.label}” ({ids})" if secret.label else f"{secret.secret_id} ({hint_text(secret.hint)})"
    return (f"Secret {name} of “{client.name}” stops authenticating at the very next request. Access tokens it "
            f"already obtained stay valid until they expire (at most {token_lifetime()}). The app's other secrets "
            "and its keys keep working. A deleted secret cannot be restored: add a new one instead.")


def key_deletion_message(client, key) -> str:
    return (f"Assertions signed with key {key.kid} ({key.key_type}) are refused from the very next request. "
            f"Access tokens “{client.name}” already obtained with it stay valid until they expire "
            f"(at most {token_lifetime()}). Its other keys keep working; you can register this public key again.")


def key_url_removal_message(client) -> str:
    return (f"The server stops using the keys at {client.jwks_uri}: assertions signed with them are refused from "
            f"the very next request. Keys pasted for “{client.name}” keep working, and access tokens already "
            f"obtained stay valid until they expire (at most {token_lifetime()}). You can register the URL again.")


# --- errors -----------------------------------------------------------------------------------

def error_page(status: int, title: str, message: str):
    return page("error.html", status, title=title, message=message)


@bp.errorhandler(DomainError)
def domain_error(exc: DomainError):
    return error_page(*error_page_text(exc))


@bp.errorhandler(CSRFError)
def csrf_error(exc: CSRFError):
    return error_page(
        400, "This form has expired",
        "The form was missing its security token or the token did not match your session, so nothing was changed. "
        "Go back, reload the page and try again.",
    )


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    code = exc.code or 500
    messages = {
        404: "There is no such page. It may have been deleted, or it belongs to another organization.",
        405: "This page does not accept that kind of request.",
        413: f"The upload is too large. Icons may be at most {ICON_MAX_BYTES // 1024} KiB.",
    }
    return error_page(code, exc.name, messages.get(code, exc.description or exc.name))


# --- signing in and out -----------------------------------------------------------------------

@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if auth.signed_in_admin() is not None:
            return redirect(next_url or url_for(".apps"), 303)
        return page("sign_in.html", email="", next_url=next_url, error=None)
    email = request.form.get("email", "")
    result = auth.sign_in(email, request.form.get("password", ""), request.remote_addr)
    if result.account is None:
        body, status = page("sign_in.html", result.status, email=email, next_url=next_url, error=result.message)
        headers = {"Retry-After": str(result.retry_after)} if result.retry_after else {}
        return body, status, headers
    auth.start_session(result.account, request.remote_addr, request.user_agent.string)
    return redirect(next_url or url_for(".apps"), 303)


@bp.post("/sign-out")
def sign_out():
    auth.end_session(request.remote_addr)
    flash("You have signed out.", "success")
    return see_other(".sign_in")


@bp.post("/sign-out-everywhere")
def sign_out_everywhere():
    ended = auth.end_everywhere(request.remote_addr)
    flash(f"You have signed out everywhere: {plural(ended, 'session', 'sessions')} ended, including this one.",
          "success")
    return see_other(".sign_in")


# --- your account: sessions and password ------------------------------------------------------

SIGN_OUT_EVERYWHERE_MESSAGE = ("Every session of your account ends, on every browser and device, this one too. "
                               "You will need your password to sign in again.")
PASSWORD_FIELDS = ("current_password", "new_password", "new_password_again")


@bp.get("/account")
def your_account():
    current = auth.current_session()
    settings = current_settings()
    return page("your_account.html", section="account", sessions=list_sessions(g.admin.account_id),
                current_hash=current.session_hash if current is not None else None,
                idle_minutes=settings.console_session_idle_minutes, max_hours=settings.console_session_max_hours,
                sign_out_everywhere_message=SIGN_OUT_EVERYWHERE_MESSAGE)


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    errors = FormErrors()
    if request.method == "POST":
        result = auth.change_password(
            g.admin, request.form.get("current_password", ""), request.form.get("new_password", ""),
            request.form.get("new_password_again", ""), request.remote_addr, request.user_agent.string,
        )
        if not result.errors:
            flash("Your password is changed. Every other session of your account has ended.", "success")
            return see_other(".your_account")
        errors = FormErrors({f if f in PASSWORD_FIELDS else "form": m for f, m in result.errors.items()},
                            status=result.status)
        headers = {"Retry-After": str(result.retry_after)} if result.retry_after else {}
        body, status = page("password.html", errors.status, section="account", errors=errors)
        return body, status, headers
    return page("password.html", section="account", errors=errors)


@bp.get("/")
def index():
    return see_other(".apps")


# --- applications -----------------------------------------------------------------------------

@bp.get("/apps")
def apps():
    return page("apps.html", section="apps", clients=list_clients(org_id()))


@bp.route("/apps/new", methods=["GET", "POST"])
def new_app():
    form = {"name": "", "description": ""}
    errors = FormErrors()
    if request.method == "POST":
        form = {"name": request.form.get("name", ""), "description": request.form.get("description", "")}
        client, errors = attempt(
            APP_FIELDS, register_client, org_id(), form["name"],
            description=form["description"], icon=uploaded_icon(), actor=actor(),
        )
        if client is not None:
            flash(f"Registered “{client.name}”. Next: choose the APIs it may call, and add a secret and a public key.",
                  "success")
            return see_other(".app_detail", client_id=client.client_id)
    return page("app_new.html", errors.status if errors else 200, section="apps", form=form, errors=errors)


def api_access_rows(client_id: str) -> list[dict]:
    """Every API the organization may use (its own first, then the platform's), its scopes and the
    app's grant for it, if any."""
    grants = {grant.api_id: grant for grant, _ in list_grants(client_id, org_id())}
    apis = sorted(list_apis(org_id()), key=lambda api: api.org_id is None)
    return [{"api": api, "scopes": scopes_of(api), "grant": grants.get(api.api_id),
             "granted": set(grants[api.api_id].scope.split()) if api.api_id in grants else set()}
            for api in apis]


def render_app_detail(client_id: str, *, status: int = 200, new_secret=None, key_form=None, key_errors=None,
                      key_url_form=None, key_url_errors=None,
                      secret_form=None, secret_errors=None):
    client = get_client(client_id, org_id())
    secrets = list_secrets(client.client_id)
    now = clock.now()
    # Each secret's state (active, expiring within EXPIRY_WARNING_DAYS, expired, leaked) and days left.
    secret_notes = {s.secret_id: (secret_state(s, now), days_left(s, now)) for s in secrets}
    return page(
        "app_detail.html", status, section="apps", client=client,
        secrets=secrets, secret_notes=secret_notes,
        secret_warnings=sum(1 for state, _ in secret_notes.values() if state != STATE_ACTIVE),
        expiry_warning_days=EXPIRY_WARNING_DAYS, default_secret_ttl_days=current_settings().secret_default_ttl_days,
        secret_form=secret_form or dict.fromkeys(SECRET_FIELDS, ""), secret_errors=secret_errors or FormErrors(),
        keys=list_keys(client.client_id), key_url=key_url_status(client.client_id),
        key_url_form=key_url_form or {"jwks_uri": ""}, key_url_errors=key_url_errors or FormErrors(),
        new_secret=new_secret, key_form=key_form or {"key": "", "kid": ""}, key_errors=key_errors or FormErrors(),
        token_endpoint=current_settings().token_endpoint, access=api_access_rows(client.client_id),
    )


@bp.get("/apps/<client_id>")
def app_detail(client_id: str):
    return render_app_detail(client_id)


@bp.route("/apps/<client_id>/edit", methods=["GET", "POST"])
def edit_app(client_id: str):
    client = get_client(client_id, org_id())
    form = {"name": client.name, "description": client.description}
    errors = FormErrors()
    if request.method == "POST":
        form = {"name": request.form.get("name", ""), "description": request.form.get("description", "")}
        changes: dict = dict(form)
        icon = uploaded_icon()
        if icon is not None:
            changes["icon"] = icon
        elif request.form.get("remove_icon"):
            changes["icon"] = None
        updated, errors = attempt(APP_FIELDS, update_client, client.client_id, org_id(), actor=actor(), **changes)
        if updated is not None:
            flash("Your changes are saved.", "success")
            return see_other(".app_detail", client_id=client.client_id)
        client = get_client(client_id, org_id())
    return page(
        "app_edit.html", errors.status if errors else 200, section="apps", client=client, form=form, errors=errors
    )


@bp.route("/apps/<client_id>/delete", methods=["GET", "POST"])
def delete_app(client_id: str):
    client = get_client(client_id, org_id())
    if request.method == "GET":
        return page(
            "confirm.html", section="apps", title=f"Delete “{client.name}”?",
            message=app_deletion_message(client),
            action=url_for(".delete_app", client_id=client.client_id), button="Delete app",
            cancel=url_for(".app_detail", client_id=client.client_id),
        )
    name = client.name
    _, errors = attempt((), delete_client, client.client_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
        return see_other(".app_detail", client_id=client.client_id)
    flash(f"Deleted “{name}”.", "success")
    return see_other(".apps")


@bp.get("/apps/<client_id>/icon")
def app_icon(client_id: str):
    client = get_client(client_id, org_id())
    if client.icon is None:
        abort(404)
    response = Response(client.icon, mimetype=client.icon_content_type or "image/png")
    response.headers["Cache-Control"] = "private, max-age=86400"  # the URL carries ?v=updated_at
    response.headers["Content-Disposition"] = "inline"
    return response


# --- secrets ----------------------------------------------------------------------------------

@bp.post("/apps/<client_id>/secrets")
def add_client_secret(client_id: str):
    client = get_client(client_id, org_id())
    form = {name: request.form.get(name, "") for name in SECRET_FIELDS}
    new_secret, errors = attempt(SECRET_FIELDS, add_secret, client.client_id, org_id(), actor=actor(),
                                 expires_in_days=form["expires_in_days"], expires_at=form["expires_at"],
                                 label=form["label"])
    if errors:
        if any(name in errors for name in SECRET_FIELDS):  # a refused label or expiry: the form again, with the reason
            return render_app_detail(client.client_id, status=errors.status, secret_form=form, secret_errors=errors)
        flash_errors(errors)
        return see_other(".app_detail", client_id=client.client_id)
    # Rendered in this response only: never put in the session, a cookie or a redirect URL.
    return render_app_detail(client.client_id, new_secret=new_secret)


@bp.route("/apps/<client_id>/secrets/<secret_id>/delete", methods=["GET", "POST"])
def delete_client_secret(client_id: str, secret_id: str):
    client = get_client(client_id, org_id())
    secret = get_secret(client.client_id, secret_id, org_id())
    if request.method == "GET":
        return page(
            "confirm.html", section="apps", title="Delete this secret?",
            message=secret_deletion_message(client, secret),
            action=url_for(".delete_client_secret", client_id=client.client_id, secret_id=secret.secret_id),
            button="Delete secret", cancel=url_for(".app_detail", client_id=client.client_id),
        )
    _, errors = attempt((), delete_secret, client.client_id, secret.secret_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"Deleted secret {secret_id}. It no longer authenticates.", "success")
    return redirect(url_for(".app_detail", client_id=client.client_id) + "#secrets", 303)


# --- public keys ------------------------------------------------------------------------------

@bp.post("/apps/<client_id>/keys")
def add_client_key(client_id: str):
    client = get_client(client_id, org_id())
    key_form = {"key": request.form.get("key", ""), "kid": request.form.get("kid", "")}
    key, errors = attempt(
        KEY_FIELDS, add_key, client.client_id, key_form["key"], kid=key_form["kid"].strip() or None,
        org_id=org_id(), actor=actor(), default_field="key",
    )
    if key is None:
        return render_app_detail(client.client_id, status=errors.status, key_form=key_form, key_errors=errors)
    flash(f"Added public key {key.kid} ({key.key_type}).", "success")
    return redirect(url_for(".app_detail", client_id=client.client_id) + "#keys", 303)


@bp.route("/apps/<client_id>/keys/<path:kid>/delete", methods=["GET", "POST"])
def delete_client_key(client_id: str, kid: str):
    client = get_client(client_id, org_id())
    key = get_key(client.client_id, kid, org_id())
    if request.method == "GET":
        return page(
            "confirm.html", section="apps", title="Delete this public key?",
            message=key_deletion_message(client, key),
            action=url_for(".delete_client_key", client_id=client.client_id, kid=key.kid),
            button="Delete key", cancel=url_for(".app_detail", client_id=client.client_id),
        )
    _, errors = attempt((), delete_key, client.client_id, key.kid, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"Deleted public key {kid}.", "success")
    return redirect(url_for(".app_detail", client_id=client.client_id) + "#keys", 303)


@bp.post("/apps/<client_id>/key-url")
def set_client_key_url(client_id: str):
    client = get_client(client_id, org_id())
    form = {"jwks_uri": request.form.get("jwks_uri", "")}
    status, errors = attempt(("jwks_uri",), set_key_url, client.client_id, form["jwks_uri"], org_id(), actor=actor(),
                             default_field="jwks_uri")
    if status is None:
        return render_app_detail(client.client_id, status=errors.status, key_url_form=form, key_url_errors=errors)
    flash(f"Registered the key URL {status.jwks_uri}; keys found there: {', '.join(status.key_ids)}.", "success")
    return redirect(url_for(".app_detail", client_id=client.client_id) + "#keys", 303)


@bp.route("/apps/<client_id>/key-url/delete", methods=["GET", "POST"])
def delete_client_key_url(client_id: str):
    client = get_client(client_id, org_id())
    if client.jwks_uri is None:
        raise NotFound("This app has no key URL.")
    if request.method == "GET":
        return page(
            "confirm.html", section="apps", title="Remove the key URL?",
            message=key_url_removal_message(client),
            action=url_for(".delete_client_key_url", client_id=client.client_id),
            button="Remove key URL", cancel=url_for(".app_detail", client_id=client.client_id),
        )
    _, errors = attempt((), delete_key_url, client.client_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash("Removed the key URL: its keys no longer verify this app's assertions.", "success")
    return redirect(url_for(".app_detail", client_id=client.client_id) + "#keys", 303)


# --- API access of an app ---------------------------------------------------------------------

@bp.post("/apps/<client_id>/access/<api_id>")
def save_app_access(client_id: str, api_id: str):
    client = get_client(client_id, org_id())
    api = get_api(api_id, org_id())
    make_default = bool(request.form.get("default"))
    grant, errors = attempt((), grant_client, client.client_id, api.api_id, request.form.getlist("scope"),
                            default=True if make_default else None, org_id=org_id(), actor=actor())
    if errors or grant is None:
        flash_errors(errors)
    else:
        scopes = grant.scope.replace(" ", ", ") or "no scopes"
        default = " It is the app's default API." if grant.is_default else ""
        flash(f"Saved: “{client.name}” may ask for “{api.name}” with {scopes}.{default}", "success")
    return redirect(url_for(".app_detail", client_id=client.client_id) + "#access", 303)


@bp.post("/apps/<client_id>/access/<api_id>/remove")
def remove_app_access(client_id: str, api_id: str):
    client = get_client(client_id, org_id())
    api = get_api(api_id, org_id())
    try:
        ungrant_client(client.client_id, api.api_id, org_id(), actor=actor())
    except NotFound as exc:  # the app and the API exist: it is the access that does not
        flash(exc.message, "error")
    else:
        flash(f"Removed the access of “{client.name}” to “{api.name}”. Tokens it already holds stay valid until "
              "they expire.", "success")
    return redirect(url_for(".app_detail", client_id=client.client_id) + "#access", 303)


# --- APIs -------------------------------------------------------------------------------------

def scope_lines(text: str) -> list[tuple[str, str]]:
    """Scopes typed one per line, as `name` or `name = description`; blank lines are skipped."""
    definitions = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            name, _, description = line.partition("=")
            definitions.append((name.strip(), description.strip()))
    return definitions


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def api_deletion(api) -> tuple[str, str]:
    """What deleting the API takes with it, in words, and the apps whose access that is (the form sends
    them back: deletion with access is forced only when exactly these were confirmed)."""
    impact = deletion_impact(api.api_id, org_id())
    names = {c.client_id: c.name for c in list_clients(org_id())}
    apps = [names.get(client_id, client_id) for client_id in impact.client_ids]
    if apps:
        access = (f"The access of {plural(len(apps), 'app', 'apps')} goes with it: "
                  + ", ".join(f"“{name}”" for name in apps) + ".")
    else:
        access = "No app has access to it."
    tokens = f"Every live access token for it is revoked at once ({impact.live_tokens or 'none'} now)."
    message = f"“{api.name}” ({api.identifier}) and its scopes are deleted. {access} {tokens} This cannot be undone."
    return message, ",".join(impact.client_ids)


def render_api_detail(api_id: str, *, status: int = 200, name_form=None, name_errors=None, scope_form=None,
                      scope_errors=None):
    api = get_api(api_id, org_id())
    editable = api.org_id == org_id()
    clients = {c.client_id: c for c in list_clients(org_id())}
    holders = [(clients[g.client_id], g) for g in org_grants_of_api(api, org_id()) if g.client_id in clients]
    context: dict = {"api": api, "editable": editable, "scopes": scopes_of(api), "holders": holders}
    if editable:
        bound_ids = bound_clients(api)
        context.update(
            bound=[clients[cid] for cid in bound_ids if cid in clients],
            bindable=[c for cid, c in clients.items() if cid not in bound_ids],
            name_form=name_form or {"name": api.name}, name_errors=name_errors or FormErrors(),
            scope_form=scope_form or {"name": "", "description": ""}, scope_errors=scope_errors or FormErrors(),
        )
        context["deletion_message"], context["confirmed_apps"] = api_deletion(api)
    return page("api_detail.html", status, section="apis", **context)


@bp.get("/apis")
def apis():
    rows = [{"api": api, "scopes": scopes_of(api)} for api in list_apis(org_id())]
    return page("apis.html", section="apis", own=[r for r in rows if r["api"].org_id is not None],
                platform=[r for r in rows if r["api"].org_id is None])


@bp.route("/apis/new", methods=["GET", "POST"])
def new_api():
    form = {"name": "", "identifier": "", "scopes": ""}
    errors = FormErrors()
    if request.method == "POST":
        form = {name: request.form.get(name, "") for name in API_FIELDS}
        # An organization's API, always: the console has no way to make a platform API.
        api, errors = attempt(API_FIELDS, create_api, form["name"], form["identifier"], org_id=org_id(),
                              scopes=scope_lines(form["scopes"]), actor=actor())
        if api is not None:
            flash(f"Registered “{api.name}”. Next: on each app's page, choose the apps that may call it.", "success")
            return see_other(".api_detail", api_id=api.api_id)
    return page("api_new.html", errors.status if errors else 200, section="apis", form=form, errors=errors)


@bp.get("/apis/<api_id>")
def api_detail(api_id: str):
    return render_api_detail(api_id)


@bp.post("/apis/<api_id>/rename")
def rename_api(api_id: str):
    api = get_owned_api(api_id, org_id())
    name_form = {"name": request.form.get("name", "")}
    updated, errors = attempt(("name",), update_api, api.api_id, org_id(), name=name_form["name"], actor=actor())
    if updated is None:
        return render_api_detail(api.api_id, status=errors.status, name_form=name_form, name_errors=errors)
    flash(f"Renamed the API “{updated.name}”.", "success")
    return see_other(".api_detail", api_id=api.api_id)


@bp.post("/apis/<api_id>/scopes")
def add_api_scope(api_id: str):
    api = get_owned_api(api_id, org_id())
    scope_form = {"name": request.form.get("name", ""), "description": request.form.get("description", "")}
    row, errors = attempt(("name", "scopes"), add_scope, api.api_id, scope_form["name"].strip(),
                          scope_form["description"], org_id=org_id(), actor=actor())
    if row is None:
        if "scopes" in errors:  # the service names the description's field after the API's scopes
            errors["description"] = errors.pop("scopes")
        return render_api_detail(api.api_id, status=errors.status, scope_form=scope_form, scope_errors=errors)
    flash(f"Added the scope {row.name}.", "success")
    return redirect(url_for(".api_detail", api_id=api.api_id) + "#scopes", 303)


@bp.route("/apis/<api_id>/scopes/<path:name>/delete", methods=["GET", "POST"])
def remove_api_scope(api_id: str, name: str):
    api = get_owned_api(api_id, org_id())
    if name not in {s.name for s in scopes_of(api)}:
        raise NotFound("The API defines no such scope.")
    if request.method == "GET":
        return page(
            "confirm.html", section="apis", title=f"Remove the scope {name}?",
            message=scope_removal_message(name),
            action=url_for(".remove_api_scope", api_id=api.api_id, name=name), button="Remove scope",
            cancel=url_for(".api_detail", api_id=api.api_id),
        )
    _, errors = attempt((), remove_scope, api.api_id, name, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"Removed the scope {name} from the API and from every app's access.", "success")
    return redirect(url_for(".api_detail", api_id=api.api_id) + "#scopes", 303)


def scope_removal_message(name: str) -> str:
    return (f"The API stops defining {name}, and every app that may ask for it loses it. "
            "Tokens already issued with it keep it until they expire.")


@bp.post("/apis/<api_id>/clients")
def bind_api_client(api_id: str):
    api = get_owned_api(api_id, org_id())
    client = get_client(request.form.get("client_id", ""), org_id())
    _, errors = attempt((), bind_client, api.api_id, client.client_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"“{client.name}” is now one of the API's own apps: it may introspect the API's tokens.", "success")
    return redirect(url_for(".api_detail", api_id=api.api_id) + "#own-apps", 303)


@bp.route("/apis/<api_id>/clients/<client_id>/delete", methods=["GET", "POST"])
def unbind_api_client(api_id: str, client_id: str):
    api = get_owned_api(api_id, org_id())
    client = get_client(client_id, org_id())
    if client.client_id not in bound_clients(api):
        raise NotFound("This app is not one of the API's own apps.")
    if request.method == "GET":
        return page(
            "confirm.html", section="apis", title=f"Unbind “{client.name}”?",
            message=unbind_message(client.name, api.name),
            action=url_for(".unbind_api_client", api_id=api.api_id, client_id=client.client_id), button="Unbind app",
            cancel=url_for(".api_detail", api_id=api.api_id),
        )
    _, errors = attempt((), unbind_client, api.api_id, client.client_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"“{client.name}” is no longer one of the API's own apps.", "success")
    return redirect(url_for(".api_detail", api_id=api.api_id) + "#own-apps", 303)


def unbind_message(app_name: str, api_name: str) -> str:
    return (f"“{app_name}” stops being one of the own apps of “{api_name}”: from now on, the tokens issued for the "
            "API introspect as inactive to it.")


@bp.route("/apis/<api_id>/delete", methods=["GET", "POST"])
def delete_api_page(api_id: str):
    api = get_owned_api(api_id, org_id())
    message, confirmed_apps = api_deletion(api)
    confirm: dict[str, Any] = {
        "section": "apis", "title": f"Delete the API “{api.name}”?", "message": message,
        "action": url_for(".delete_api_page", api_id=api.api_id), "button": "Delete API",
        "cancel": url_for(".api_detail", api_id=api.api_id), "fields": {"confirmed_apps": confirmed_apps},
    }
    if request.method == "GET":
        return page("confirm.html", **confirm)
    if request.form.get("confirmed_apps", "") != confirmed_apps:
        # Apps got or lost access since the confirmation was shown: show what goes now, delete nothing.
        flash("Which apps have access to this API changed since you confirmed. Read what the deletion takes now.",
              "error")
        return page("confirm.html", 409, **confirm)
    name = api.name
    # Forced only when apps have access, and exactly those the admin confirmed.
    _, errors = attempt((), delete_api, api.api_id, org_id(), force=bool(confirmed_apps), actor=actor())
    if errors:
        flash_errors(errors)
        return see_other(".api_detail", api_id=api.api_id)
    flash(f"Deleted the API “{name}”.", "success")
    return see_other(".apis")


# --- service accounts -------------------------------------------------------------------------

@bp.route("/accounts", methods=["GET", "POST"])
def service_accounts():
    form = {"name": ""}
    errors = FormErrors()
    if request.method == "POST":
        form = {"name": request.form.get("name", "")}
        account, errors = attempt(("name",), create_account, org_id(), form["name"], "service", actor=actor())
        if account is not None:
            flash(
                f"Created service account “{account.name}”. Use {account.account_id} as the sub of its assertions.",
                "success",
            )
            return see_other(".service_accounts")
    return page(
        "accounts.html", errors.status if errors else 200, section="accounts",
        accounts=list_accounts(org_id(), kind="service"), form=form, errors=errors,
        disable_message=SERVICE_ACCOUNT_DISABLE_MESSAGE,
    )


def service_account(account_id: str):
    account = get_account(account_id, org_id())
    if account.kind != "service":
        raise NotFound("Service account not found.")
    return account


SERVICE_ACCOUNT_DISABLE_MESSAGE = (
    "No new tokens are issued for this account, and its current tokens stop introspecting as active for good. "
    "An operator can enable it again (authserver account enable, or the management API); only tokens issued "
    "after that work.")


@bp.route("/accounts/<account_id>/disable", methods=["GET", "POST"])
def disable_service_account(account_id: str):
    account = service_account(account_id)
    if request.method == "GET":
        return page(
            "confirm.html", section="accounts", title=f"Disable “{account.name}”?",
            message=SERVICE_ACCOUNT_DISABLE_MESSAGE,
            action=url_for(".disable_service_account", account_id=account.account_id), button="Disable account",
            cancel=url_for(".service_accounts"),
        )
    _, errors = attempt((), disable_account, account.account_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"Disabled “{account.name}”.", "success")
    return see_other(".service_accounts")


# --- admins -----------------------------------------------------------------------------------

ADMIN_DISABLE_MESSAGE = ("They are signed out of the console everywhere at once and cannot sign in, no new tokens "
                         "are issued for them, and their current tokens stop introspecting as active. "
                         "You can enable them again.")


@bp.get("/admins")
def admins():
    return page("admins.html", section="admins", admins=list_admins(org_id()),
                disable_message=ADMIN_DISABLE_MESSAGE)


@bp.route("/admins/<account_id>/disable", methods=["GET", "POST"])
def disable_org_admin(account_id: str):
    account = get_admin(account_id, org_id())
    if request.method == "GET":
        return page(
            "confirm.html", section="admins", title=f"Disable {account.email or account.name}?",
            message=ADMIN_DISABLE_MESSAGE,
            action=url_for(".disable_org_admin", account_id=account.account_id), button="Disable admin",
            cancel=url_for(".admins"),
        )
    _, errors = attempt((), disable_admin, account.account_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"Disabled {account.email or account.name}: they are signed out everywhere.", "success")
    return see_other(".admins")


@bp.post("/admins/<account_id>/enable")
def enable_org_admin(account_id: str):
    account = get_admin(account_id, org_id())
    _, errors = attempt((), enable_account, account.account_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"Enabled {account.email or account.name}: they can sign in again. Tokens issued before they "
              "were disabled stay revoked.", "success")
    return see_other(".admins")


# --- audit log --------------------------------------------------------------------------------

AUDIT_PAGE_SIZES = (25, 50, 100, 200)
AUDIT_FILTER_FIELDS = ("action", "actor", "target", "since", "until")


def audit_int(name: str, allowed: tuple[int, ...] | None = None) -> int | None:
    """An integer query parameter of the audit page; junk is an error the page shows, never ignored."""
    text = request.args.get(name, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or (allowed and int(text) not in allowed):
        choices = f"one of {', '.join(map(str, allowed))}" if allowed else "a whole number"
        raise InvalidInput(f"The {name.replace('_', ' ')} must be {choices}.", field=name)
    return int(text)


@bp.get("/audit")
def audit_log():
    form = {name: request.args.get(name, "") for name in AUDIT_FILTER_FIELDS}
    size = AUDIT_PAGE_SIZE
    errors = FormErrors()
    result = None
    try:
        size = audit_int("size", AUDIT_PAGE_SIZES) or AUDIT_PAGE_SIZE
        where = make_audit_filter(**form)
        result = find_events(org_id(), where, limit=size, before_id=audit_int("before"), after_id=audit_int("after"))
    except InvalidInput as exc:
        errors = form_errors(exc, AUDIT_FILTER_FIELDS)
    people = {a.account_id: a for a in list_accounts(org_id())}

    def who(actor_id: str) -> str:
        person = people.get(actor_id)
        return (person.email or person.name) if person is not None else actor_id

    rows = []
    for event in result.events if result else []:
        try:
            details = json.loads(event.details or "{}")
        except ValueError:
            details = {}
        rows.append({"event": event, "actor": who(event.actor), "label": action_label(event.action),
                     "details": details if isinstance(details, dict) else {}})
    actions, actors = event_choices(org_id())
    # The filters and the page size travel with the paging links.
    keep = {name: value for name, value in form.items() if value}
    if size != AUDIT_PAGE_SIZE:
        keep["size"] = size
    return page(
        "audit.html", errors.status if errors else 200, section="audit", rows=rows, form=form, errors=errors,
        size=size, sizes=AUDIT_PAGE_SIZES, keep=keep, filtered=bool(keep),
        older=result.older if result else None, newer=result.newer if result else None,
        paged=bool(request.args.get("before") or request.args.get("after")),
        action_choices=[(a, action_label(a)) for a in actions],
        actor_choices=sorted(((a, who(a)) for a in actors), key=lambda pair: pair[1].lower()),
    )
