"""The `authserver` command line: the operator's front door to the same services as the console and API."""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

import click

from . import clock
from .config import MIGRATIONS_DIR, ConfigError
from .errors import DomainError


def _emit(ctx_json: bool, payload, human: str | None = None) -> None:
    if ctx_json:
        click.echo(json.dumps(payload, sort_keys=True))
    else:
        click.echo(human if human is not None else json.dumps(payload, indent=2, sort_keys=True))


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _app():
    from . import create_app

    try:
        return create_app()
    except ConfigError as exc:
        _fail(str(exc), 2)


def with_app(func):
    """Run the command inside an app context; domain errors become a message on stderr and an exit code."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
    @functools.wraps(func)
    def wrapper(*args, as_json: bool = False, **kwargs):
        app = _app()
        with app.app_context():
            try:
                payload, human = func(*args, **kwargs)
            except DomainError as exc:
                _fail(exc.message, exc.exit_code)
            except Exception as exc:  # a database not yet initialised is the common case
                from sqlalchemy.exc import OperationalError, ProgrammingError

                if isinstance(exc, (OperationalError, ProgrammingError)):
                    _fail("the database is not ready; run 'authserver init' first", 6)
                raise
            _emit(as_json, payload, human)

    return wrapper


@click.group()
@click.version_option(package_name="authserver")
def main():
    """authserver: OAuth 2.0 JWT bearer grant (RFC 7523) for confidential clients."""


def initialise() -> dict:
    from flask_migrate import upgrade

    from .services.signing_keys import ensure_signing_key

    from .services.apis import ensure_platform_apis

    upgrade(directory=str(MIGRATIONS_DIR))
    key = ensure_signing_key()
    apis = ensure_platform_apis()
    return {"signing_kid": key.kid, "signing_alg": key.alg, **apis}


@main.command()
@with_app
def init():
    """Migrate the schema to the latest version and create a signing key if none."""
    result = initialise()
    return result, f"Database ready. Signing key {result['signing_kid']} ({result['signing_alg']})."


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="gunicorn workers (default: 2 per core, at most 8)")
@click.option("--json", "as_json", is_flag=True, help="Print where it serves as one JSON document on stdout.")
def serve(host: str, port: int, workers: int | None, as_json: bool):
    """Initialise if needed, then serve with gunicorn.

    Without AUTHSERVER_ISSUER the issuer is http://HOST:PORT, so metadata and tokens name the address
    actually served."""
    derived = not os.environ.get("AUTHSERVER_ISSUER")
    if derived:
        os.environ["AUTHSERVER_ISSUER"] = f"http://{host}:{port}"
    app = _app()
    with app.app_context():
        initialise()
        settings = app.extensions["authserver.settings"]
    from .config import SERVED_ISSUER_FILE

    served = settings.instance_path / SERVED_ISSUER_FILE
    if derived:
        served.write_text(settings.issuer + "\n")
    elif served.exists():
        served.unlink()
    os.environ["AUTHSERVER_INSTANCE_PATH"] = str(settings.instance_path)
    metrics_dir = settings.instance_path / f"prometheus-{port}"
    if metrics_dir.exists():
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if as_json:
        click.echo(json.dumps({"issuer": settings.issuer, "url": f"http://{host}:{port}",
                               "metadata": f"{settings.issuer}/.well-known/oauth-authorization-server",
                               "console": f"{settings.issuer}/console"}, sort_keys=True))
        sys.stdout.flush()
    click.echo(f"authserver serving {settings.issuer} on http://{host}:{port}", err=True)
    click.echo(f"  metadata: http://{host}:{port}/.well-known/oauth-authorization-server", err=True)
    click.echo(f"  console:  http://{host}:{port}/console", err=True)
    click.echo("  next: in another terminal, run '.venv/bin/authserver demo' for a ready client and a curl line", err=True)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:authserver.gunicorn_conf", "-b", f"{host}:{port}"]
    if workers:
        argv += ["-w", str(workers)]
    argv.append("authserver.wsgi:app")
    os.execv(sys.executable, argv)


# --- configuration ----------------------------------------------------------------------------

@main.group()
def config():
    """Check the configuration, or generate production secrets."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def config_check(as_json):
    """Run the startup checks: settings, instance directory, database, schema, key-encryption key, Redis.

    Exit codes: 2 settings, 10 instance directory, 11 database, 12 schema, 13 key-encryption key, 14 Redis."""
    from .checks import CheckFailed, run_checks

    app = _app()
    with app.app_context():
        try:
            results = run_checks(app)
        except CheckFailed as failed:
            _fail(failed.message, failed.exit_code)
    _emit(as_json, {"ok": True, "checks": results}, "\n".join(f"ok: {line}" for line in results))


@config.command("reference")
def config_reference():
    """Print the configuration reference (markdown): every setting with its variable, default and meaning."""
    from .config import reference_markdown

    click.echo(reference_markdown(), nl=False)


@config.command("generate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def config_generate(as_json):
    """Print fresh secrets for a production deployment as environment lines (share them between hosts)."""
    import secrets as _secrets

    values = {name: _secrets.token_urlsafe(32) for name in
              ("AUTHSERVER_SECRET_PEPPER", "AUTHSERVER_KEY_ENCRYPTION_KEY", "AUTHSERVER_SESSION_KEY")}
    _emit(as_json, values, "\n".join(f"{k}={v}" for k, v in values.items()))


# --- organizations and accounts -------------------------------------------------------------

@main.group()
def org():
    """Organizations."""


@org.command("create")
@click.argument("name")
@with_app
def org_create(name):
    """Create an organization."""
    from .services.organizations import create_organization

    o = create_organization(name)
    return {"org_id": o.org_id}, o.org_id


@org.command("list")
@with_app
def org_list():
    """List organizations."""
    from .services.organizations import list_organizations

    rows = [{"org_id": o.org_id, "name": o.name, "created_at": clock.isoformat(o.created_at)} for o in list_organizations()]
    return rows, "\n".join(f"{r['org_id']}  {r['name']}" for r in rows) or "No organizations."


@main.group()
def account():
    """Accounts: service identities and users."""


def _account_json(a) -> dict:
    return {"account_id": a.account_id, "org_id": a.org_id, "name": a.name, "kind": a.kind, "email": a.email,
            "admin": a.is_admin, "disabled": a.disabled_at is not None, "created_at": clock.isoformat(a.created_at)}


@account.command("create")
@click.argument("org_id")
@click.argument("name")
@click.option("--kind", type=click.Choice(["service", "user"]), required=True)
@click.option("--email", default=None)
@click.option("--admin", is_flag=True, help="An organization admin (users only).")
@click.option("--password-stdin", is_flag=True, help="Read the user's password from standard input.")
@with_app
def account_create(org_id, name, kind, email, admin, password_stdin):
    """Create a service account (a machine identity) or a user (email, password; --admin for the console)."""
    from .services.accounts import create_account

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    a = create_account(org_id, name, kind, email=email, password=password, is_admin=admin)
    return {"account_id": a.account_id}, a.account_id


@account.command("disable")
@click.argument("account_id")
@with_app
def account_disable(account_id):
    """Disable an account: no new tokens, its live tokens introspect inactive (not the last admin)."""
    from .services.accounts import disable_account

    a = disable_account(account_id)
    return _account_json(a), f"Account {a.account_id} disabled."


@account.command("enable")
@click.argument("account_id")
@with_app
def account_enable(account_id):
    """Enable a disabled account (its tokens from before stay revoked)."""
    from .services.accounts import enable_account

    a = enable_account(account_id)
    return _account_json(a), f"Account {a.account_id} enabled."


@account.command("set-password")
@click.argument("account_id")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the new password from standard input.")
@with_app
def account_set_password(account_id, password_stdin):
    """Set a user's password (the operator's reset), read from standard input."""
    from .services.accounts import set_password

    a = set_password(account_id, sys.stdin.readline().rstrip("\r\n"))
    return {"account_id": a.account_id, "password_set": True}, f"Password of {a.account_id} set."


@account.command("list")
@click.argument("org_id")
@with_app
def account_list(org_id):
    """List an organization's accounts with their kind and status."""
    from .services.accounts import list_accounts
    from .services.organizations import get_organization

    get_organization(org_id)
    rows = [_account_json(a) for a in list_accounts(org_id)]
    return rows, "\n".join(f"{r['account_id']}  {r['kind']:7}  {'disabled' if r['disabled'] else 'active':8}  "
                           f"{'admin  ' if r['admin'] else ''}{r['name']}" for r in rows) or "No accounts."


# --- clients --------------------------------------------------------------------------------

@main.group()
def client():
    """Client applications."""


def client_json(c) -> dict:
    from .services.apis import list_grants

    return {"client_id": c.client_id, "org_id": c.org_id, "name": c.name, "description": c.description,
            "has_icon": c.icon is not None, "created_at": clock.isoformat(c.created_at),
            "grants": [grant_json(g, a) for g, a in list_grants(c.client_id)]}


def grant_json(g, a) -> dict:
    return {"api_id": a.api_id, "identifier": a.identifier, "scope": g.scope, "default": g.is_default}


@client.command("create")
@click.argument("org_id")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--icon", type=click.Path(dir_okay=False), default=None, help="PNG, JPEG, GIF or WebP, at most 256 KiB.")
@click.option("--type", "client_type", default="confidential", help="Only 'confidential' is supported.")
@with_app
def client_create(org_id, name, description, icon, client_type):
    """Register a confidential client application; give it API access with 'client grant'."""
    from .errors import InvalidInput
    from .services.clients import register_client

    icon_bytes = None
    if icon is not None:
        try:
            with open(icon, "rb") as fh:
                icon_bytes = fh.read(300 * 1024)
        except OSError as exc:
            raise InvalidInput(f"cannot read icon file: {exc.strerror}") from None
    c = register_client(org_id, name, description=description, icon=icon_bytes, client_type=client_type)
    return {"client_id": c.client_id}, c.client_id


@client.command("update")
@click.argument("client_id")
@click.option("--name", default=None)
@click.option("--description", default=None, help="Empty to clear.")
@click.option("--icon", type=click.Path(dir_okay=False), default=None, help="PNG, JPEG, GIF or WebP, at most 256 KiB.")
@click.option("--no-icon", is_flag=True, help="Remove the icon.")
@with_app
def client_update(client_id, name, description, icon, no_icon):
    """Change a client's name, description or icon."""
    from .errors import InvalidInput
    from .services.clients import update_client

    changes = {}
    if name is not None:
        changes["name"] = name
    if description is not None:
        changes["description"] = description
    if icon is not None and no_icon:
        raise InvalidInput("Give --icon or --no-icon, not both.")
    if no_icon:
        changes["icon"] = None
    elif icon is not None:
        try:
            with open(icon, "rb") as fh:
                changes["icon"] = fh.read(300 * 1024)
        except OSError as exc:
            raise InvalidInput(f"cannot read icon file: {exc.strerror}") from None
    c = update_client(client_id, **changes)
    return client_json(c), f"Client {c.client_id} updated."


@client.command("list")
@click.argument("org_id")
@with_app
def client_list(org_id):
    """List an organization's client applications."""
    from .services.clients import list_clients
    from .services.organizations import get_organization

    get_organization(org_id)
    rows = [client_json(c) for c in list_clients(org_id)]
    return rows, "\n".join(f"{r['client_id']}  {r['name']}" for r in rows) or "No clients."


@client.command("show")
@click.argument("client_id")
@with_app
def client_show(client_id):
    """Show a client application with its API access."""
    from .services.clients import get_client

    data = client_json(get_client(client_id))
    return data, json.dumps(data, indent=2, sort_keys=True)


@client.command("delete")
@click.argument("client_id")
@with_app
def client_delete(client_id):
    """Delete a client with its secrets, keys and API access; its tokens become inactive at once."""
    from .services.clients import delete_client

    delete_client(client_id)
    return {"deleted": client_id}, f"Client {client_id} deleted; its tokens are inactive."


@client.command("grant")
@click.argument("client_id")
@click.argument("api")
@click.option("--scope", default="", help='The scopes of the API the client may ask for, space-delimited, e.g. "orders:read".')
@click.option("--default/--no-default", "default", default=None,
              help="Make this the client's default API (used when a token request names no resource). "
                   "Without either flag a client's first grant becomes its default.")
@with_app
def client_grant(client_id, api, scope, default):
    """Give a client access to an API (by identifier or api_id) with these scopes; replaces an earlier grant."""
    from .services.apis import find_api, grant_client

    g = grant_client(client_id, api, scope, default=default)
    data = grant_json(g, find_api(g.api_id))
    return data, f"Client {client_id} may ask for {data['identifier']} with scope '{data['scope']}'" + (
        " (its default API)." if data["default"] else ".")


@client.command("ungrant")
@click.argument("client_id")
@click.argument("api")
@with_app
def client_ungrant(client_id, api):
    """Take a client's access to an API (by identifier or api_id) away; tokens already issued stay valid."""
    from .services.apis import ungrant_client

    ungrant_client(client_id, api)
    return {"client_id": client_id, "ungranted": api}, f"Client {client_id} no longer has access to {api}."


# --- APIs -----------------------------------------------------------------------------------

@main.group()
def api():
    """APIs (resource servers): the audiences of access tokens, with their scopes."""


def api_json(a) -> dict:
    from .services.apis import bound_clients, opened_to, scopes_of

    return {"api_id": a.api_id, "name": a.name, "identifier": a.identifier,
            "owner": a.org_id or "platform", "org_id": a.org_id, "open_to_all": a.open_to_all,
            "opened_to": opened_to(a) if a.org_id is None else [], "builtin": a.builtin,
            "scopes": [{"name": s.name, "description": s.description} for s in scopes_of(a)],
            "clients": bound_clients(a), "created_at": clock.isoformat(a.created_at),
            "updated_at": clock.isoformat(a.updated_at)}


def _scope_option(values) -> list[tuple[str, str]]:
    return [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in values]


@api.command("create")
@click.argument("name")
@click.argument("identifier")
@click.option("--org", "org_id", default=None, help="The organization that owns the API.")
@click.option("--platform", is_flag=True, help="A platform API (no owner), for the organizations it is opened to.")
@click.option("--open", "open_to_all", is_flag=True, help="Platform APIs: open to every organization.")
@click.option("--scope", "scopes", multiple=True, metavar="NAME[=DESCRIPTION]", help="A scope the API defines (repeatable).")
@with_app
def api_create(name, identifier, org_id, platform, open_to_all, scopes):
    """Register an API: IDENTIFIER is an absolute URI (RFC 8707), the `aud` of its tokens; unique on the server."""
    from .errors import InvalidInput
    from .services.apis import create_api

    if bool(org_id) == bool(platform):
        raise InvalidInput("Give exactly one owner: --org ORG_ID or --platform.")
    if open_to_all and not platform:
        raise InvalidInput("--open applies to platform APIs only.")
    a = create_api(name, identifier, org_id=org_id, scopes=_scope_option(scopes), open_to_all=open_to_all)
    return {"api_id": a.api_id}, a.api_id


@api.command("list")
@click.option("--org", "org_id", default=None, help="Only the APIs this organization may use (its own and open platform APIs).")
@with_app
def api_list(org_id):
    """List APIs."""
    from .services.apis import list_apis
    from .services.organizations import get_organization

    if org_id is not None:
        get_organization(org_id)
    rows = [api_json(a) for a in list_apis(org_id)]
    return rows, "\n".join(f"{r['api_id']}  {r['owner']:24}  {r['identifier']}  ({' '.join(s['name'] for s in r['scopes'])})"
                           for r in rows) or "No APIs."


@api.command("show")
@click.argument("api_id")
@with_app
def api_show(api_id):
    """Show an API with its scopes, owner and bound clients."""
    from .services.apis import find_api

    data = api_json(find_api(api_id))
    return data, json.dumps(data, indent=2, sort_keys=True)


@api.command("update")
@click.argument("api_id")
@click.option("--name", default=None, help="A new name.")
@click.option("--open/--closed", "open_to_all", default=None, help="Platform APIs: open to every organization, or only to chosen ones.")
@with_app
def api_update(api_id, name, open_to_all):
    """Rename an API or open a platform API to every organization (the identifier never changes)."""
    from .services.apis import update_api

    changes = {}
    if name is not None:
        changes["name"] = name
    if open_to_all is not None:
        changes["open_to_all"] = open_to_all
    a = update_api(api_id, **changes)
    return api_json(a), f"API {a.api_id} updated."


@api.command("delete")
@click.argument("api_id")
@click.option("--force", is_flag=True, help="Also remove every client's access to the API.")
@with_app
def api_delete(api_id, force):
    """Delete an API: refused while clients hold access to it unless --force. Its live tokens are revoked."""
    from .services.apis import delete_api

    impact = delete_api(api_id, force=force)
    data = {"deleted": api_id, "removed_grants": impact.client_ids, "revoked_tokens": impact.live_tokens}
    return data, (f"API {api_id} deleted; access removed from {len(impact.client_ids)} client(s), "
                  f"{impact.live_tokens} live token(s) revoked.")


@api.command("open")
@click.argument("api_id")
@click.argument("org_id")
@with_app
def api_open(api_id, org_id):
    """Open a platform API to one organization."""
    from .services.apis import open_api

    return api_json(open_api(api_id, org_id)), f"API {api_id} is open to {org_id}."


@api.command("close")
@click.argument("api_id")
@click.argument("org_id")
@with_app
def api_close(api_id, org_id):
    """Close a platform API to one organization: its clients' access to it stops at once."""
    from .services.apis import close_api

    return api_json(close_api(api_id, org_id)), f"API {api_id} is closed to {org_id}."


@api.group("scope")
def api_scope():
    """The scopes an API defines."""


@api_scope.command("add")
@click.argument("api_id")
@click.argument("name")
@click.option("--description", default=None)
@with_app
def api_scope_add(api_id, name, description):
    """Define a scope (RFC 6749 section 3.3 scope-token)."""
    from .services.apis import add_scope

    row = add_scope(api_id, name, description)
    return {"api_id": api_id, "name": row.name, "description": row.description}, f"Scope {row.name} added."


@api_scope.command("delete")
@click.argument("api_id")
@click.argument("name")
@with_app
def api_scope_delete(api_id, name):
    """Remove a scope from an API and from every client's access to it."""
    from .services.apis import remove_scope

    remove_scope(api_id, name)
    return {"api_id": api_id, "deleted": name}, f"Scope {name} removed."


@api.command("bind-client")
@click.argument("api_id")
@click.argument("client_id")
@with_app
def api_bind_client(api_id, client_id):
    """Make CLIENT_ID the API's own client: it may introspect the tokens issued for the API."""
    from .services.apis import bind_client

    bind_client(api_id, client_id)
    return {"api_id": api_id, "client_id": client_id}, f"Client {client_id} introspects for API {api_id}."


@api.command("unbind-client")
@click.argument("api_id")
@click.argument("client_id")
@with_app
def api_unbind_client(api_id, client_id):
    """Stop CLIENT_ID introspecting for the API."""
    from .services.apis import unbind_client

    unbind_client(api_id, client_id)
    return {"api_id": api_id, "unbound": client_id}, f"Client {client_id} no longer introspects for API {api_id}."


# --- secrets --------------------------------------------------------------------------------

@main.group()
def secret():
    """Client secrets (shown once, stored as hashes)."""


@secret.command("add")
@click.argument("client_id")
@click.option("--expires-in", "expires_in", metavar="DAYS",
              help="Days until the secret stops authenticating (1 to 3650).")
@click.option("--expires-at", "expires_at", metavar="ISO-8601-TIME",
              help="When the secret stops authenticating, e.g. 2030-01-31T12:00:00Z (a date alone: midnight UTC).")
@click.option("--label", metavar="TEXT", help="Words to tell this secret apart in listings (up to 100 characters).")
@with_app
def secret_add(client_id, expires_in, expires_at, label):
    """Generate a client secret: shown once here, stored only as a hash.

    Without --expires-in or --expires-at it expires after AUTHSERVER_SECRET_DEFAULT_TTL_DAYS (0: never)."""
    from .services.client_secrets import add_secret

    new = add_secret(client_id, expires_at=expires_at, expires_in_days=expires_in, label=label)
    expiry = clock.isoformat(new.expires_at)
    human = (f"secret_id:     {new.secret_id}\nclient_secret: {new.client_secret}\n"
             f"label:         {new.label or '(none)'}\nexpires_at:    {expiry or 'never'}\n"
             "This secret is shown once and cannot be retrieved again. Store it now.")
    return ({"secret_id": new.secret_id, "client_secret": new.client_secret, "label": new.label,
             "expires_at": expiry}, human)


def secret_json(s) -> dict:
    return {"secret_id": s.secret_id, "label": s.label, "created_at": clock.isoformat(s.created_at),
            "last_used_at": clock.isoformat(s.last_used_at), "expires_at": clock.isoformat(s.expires_at),
            "leaked_at": clock.isoformat(s.leaked_at)}


def secret_line(s) -> str:
    """One secret for people: its times, and a warning when it no longer works or soon will not."""
    from .services.client_secrets import STATE_EXPIRED, STATE_EXPIRING, STATE_LEAKED, days_left, secret_state

    row = secret_json(s)
    label = f"  \"{s.label}\"" if s.label else ""
    line = (f"{row['secret_id']}{label}  created {row['created_at']}  last used {row['last_used_at'] or 'never'}"
            f"  expires {row['expires_at'] or 'never'}")
    state = secret_state(s)
    if state == STATE_LEAKED:
        line += f"  ! REPORTED LEAKED at {row['leaked_at']}: disabled, add a new secret and delete this one"
    elif state == STATE_EXPIRED:
        line += "  ! EXPIRED: no longer authenticates"
    elif state == STATE_EXPIRING:
        days = days_left(s)
        line += f"  ! expires in {days} day{'s' if days != 1 else ''}: add a new secret and switch to it"
    return line


@secret.command("list")
@click.argument("client_id")
@with_app
def secret_list(client_id):
    """List a client's secrets (ids, times and expiry, never the secrets)."""
    from .services.client_secrets import list_secrets

    secrets_ = list_secrets(client_id)
    return [secret_json(s) for s in secrets_], "\n".join(secret_line(s) for s in secrets_) or "No secrets."


@secret.command("delete")
@click.argument("client_id")
@click.argument("secret_id")
@with_app
def secret_delete(client_id, secret_id):
    """Delete a secret: refused on the very next request; tokens it obtained stay valid."""
    from .services.client_secrets import delete_secret

    delete_secret(client_id, secret_id)
    return {"deleted": secret_id}, f"Secret {secret_id} deleted."


# --- keys -----------------------------------------------------------------------------------

@main.group()
def key():
    """Public keys that verify a client's assertions."""


def key_json(k) -> dict:
    return {"kid": k.kid, "key_type": k.key_type, "created_at": clock.isoformat(k.created_at)}


@key.command("add")
@click.argument("client_id")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--kid", default=None, help="Key id (default: the JWK's kid or the RFC 7638 thumbprint).")
@with_app
def key_add(client_id, file, kid):
    """Register a public key (PEM or JWK) that verifies the client's assertions."""
    from .errors import InvalidInput
    from .services.client_keys import add_key

    try:
        text = Path(file).read_bytes()[:65536]
    except OSError as exc:
        raise InvalidInput(f"cannot read key file: {exc.strerror}") from None
    k = add_key(client_id, text, kid=kid)
    return {"kid": k.kid}, k.kid


def key_url_json(status) -> dict:
    return {"jwks_uri": status.jwks_uri, "created_at": clock.isoformat(status.added_at), "key_ids": list(status.key_ids),
            "last_fetch_at": clock.isoformat(status.last_fetch_at), "next_fetch_at": clock.isoformat(status.next_fetch_at),
            "last_error": status.last_error, "last_error_at": clock.isoformat(status.last_error_at)}


def key_url_human(entry: dict) -> str:
    fetched = (f"last fetched {entry['last_fetch_at']}, keys: {', '.join(entry['key_ids']) or 'none'}"
               if entry["last_fetch_at"] else "never fetched")
    error = f"\n  last error ({entry['last_error_at']}): {entry['last_error']}" if entry["last_error"] else ""
    return f"URL {entry['jwks_uri']}  added {entry['created_at']}  {fetched}{error}"


@key.command("add-url")
@click.argument("client_id")
@click.argument("url")
@with_app
def key_add_url(client_id, url):
    """Register the URL of a JWK Set whose keys verify the client's assertions (one per client; a new
    one replaces the old). It must answer now with at least one usable signing key."""
    from .services.client_keys import set_key_url

    entry = key_url_json(set_key_url(client_id, url))
    return entry, key_url_human(entry)


@key.command("list")
@click.argument("client_id")
@with_app
def key_list(client_id):
    """List a client's public keys, and its key URL with the keys fetched from it and the last error."""
    from .services.client_keys import key_url_status, list_keys

    rows = [key_json(k) for k in list_keys(client_id)]
    lines = [f"{r['kid']}  {r['key_type']}  created {r['created_at']}" for r in rows]
    status = key_url_status(client_id)
    if status is not None:
        entry = key_url_json(status)
        rows.append(entry)
        lines.append(key_url_human(entry))
    return rows, "\n".join(lines) or "No keys."


@key.command("delete")
@click.argument("client_id")
@click.argument("kid")
@with_app
def key_delete(client_id, kid):
    """Delete a public key (by its KID), or the key URL (give the URL): assertions signed with its keys
    are refused at once."""
    from .errors import NotFound
    from .services.client_keys import delete_key, delete_key_url
    from .services.clients import get_client

    try:
        delete_key(client_id, kid)
    except NotFound:
        if get_client(client_id).jwks_uri != kid:
            raise
        delete_key_url(client_id)
        return {"deleted": kid}, f"Key URL {kid} deleted."
    return {"deleted": kid}, f"Key {kid} deleted."


# --- server keys and housekeeping -----------------------------------------------------------

@main.group("signing-key")
def signing_key():
    """The server's access-token signing keys."""


def _signing_key_json(entry: dict) -> dict:
    return {**entry, **{name: clock.isoformat(entry[name])
                        for name in ("created_at", "activates_at", "retired_at", "withdrawn_at")}}


@signing_key.command("list")
@with_app
def signing_key_list():
    """Every signing key, newest first: pending (published, not signing yet), signing, retired
    (published until its tokens expire), expired (unpublished) or withdrawn."""
    from .services.signing_keys import list_signing_keys

    rows = [_signing_key_json(entry) for entry in list_signing_keys()]
    columns = ("kid", "alg", "state", "created_at", "activates_at", "retired_at", "withdrawn_at")
    table = [columns] + [tuple(r[c] or "-" for c in columns) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    human = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table)
    return rows, human if rows else "No signing keys."


@signing_key.command("rotate")
@click.option("--now", "at_once", is_flag=True,
              help="The new key signs at once and every other key stops signing at once (a compromised key).")
@with_app
def signing_key_rotate(at_once):
    """Add a signing key. It is published at once and signs after AUTHSERVER_SIGNING_KEY_ACTIVATION_DELAY
    seconds (with --now: at once); older keys stay published until their tokens expire."""
    from flask import current_app

    from .services.signing_keys import rotate_signing_key

    k = rotate_signing_key(now=at_once)
    settings = current_app.extensions["authserver.settings"]
    if at_once:
        when = (f"it signs now (every worker within {settings.signing_key_refresh} s) and every other key "
                "has stopped signing")
    else:
        when = f"it signs from {clock.isoformat(k.activates_at)}"
    return ({"kid": k.kid, "alg": k.alg},
            f"New signing key {k.kid} ({k.alg}): {when}; older keys stay published until their tokens expire.")


@signing_key.command("withdraw", context_settings={"ignore_unknown_options": True})  # a kid may begin with "-"
@click.argument("kid")
@with_app
def signing_key_withdraw(kid):
    """Withdraw a compromised key that no longer signs (after 'rotate --now'): it leaves the JWKS and
    every token it signed is inactive at once. Final."""
    from flask import current_app

    from .services.signing_keys import signing_key_state, withdraw_signing_key

    key = withdraw_signing_key(kid)
    refresh = current_app.extensions["authserver.settings"].signing_key_refresh
    if key.retired_at is not None and key.withdrawn_at - key.retired_at < refresh:
        click.echo(f"warning: {kid} stopped signing {key.withdrawn_at - key.retired_at} s ago; workers re-read "
                   f"their signing key every {refresh} s, and a token a worker signs with it meanwhile is "
                   "inactive and unverifiable.", err=True)
    entry = _signing_key_json(signing_key_state(kid))
    return entry, (f"Signing key {kid} withdrawn: it is no longer published and every token it signed is inactive "
                   "at introspection. Resource servers that cache the JWKS drop it when their copy expires.")


def purge_once() -> dict:
    from flask import current_app

    from .services.client_secrets import note_expiring_secrets
    from .services.tokens import purge_expired

    result = purge_expired()
    result["rate_limit_counters"] = current_app.extensions["authserver.oauth"].runtime.rate_limiter.purge()
    result["expiring_secrets_noticed"] = len(note_expiring_secrets())
    return result


@main.command()
@click.option("--every", type=int, default=0, help="Repeat every N seconds until stopped (the background purger).")
@click.option("--parent", type=int, default=None, hidden=True,
              help="Stop when this process (the server's master) is gone.")
@with_app
def purge(every, parent):
    """Delete expired token records, used assertion ids, rate-limit windows and console sessions, and
    write a secret.expiring audit event for each secret that came within 14 days of its expiry.

    With --every, one purger of the whole deployment works: hosts sharing a PostgreSQL database elect
    it through an advisory lock, so N hosts do not purge N times; another takes over if it dies."""
    import logging
    import signal

    from .services.tokens import PurgeLeader

    log = logging.getLogger("authserver.purge")
    result = purge_once()
    if every <= 0:
        return result, (f"Purged {result['access_tokens']} expired tokens, {result['used_assertions']} used "
                        f"assertion ids and {result['rate_limit_counters']} rate-limit windows.")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    leader = PurgeLeader()
    deadline = time.monotonic() + every
    while not stopping:
        if parent is not None and os.getppid() != parent:
            break  # the master died without stopping us: never outlive it
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        if time.monotonic() < deadline:
            continue
        deadline = time.monotonic() + every
        try:
            if leader.is_leader():
                result = purge_once()
                log.info("purged", extra=result)
        except Exception as exc:  # a database hiccup must not end the background purger
            from .outages import note_outage

            note_outage("database", exc)
        finally:
            from .extensions import db

            db.session.remove()
    leader.close()
    return result, "Purger stopped."


# --- client-side helpers --------------------------------------------------------------------

def sign_assertion(private_key_pem: bytes, client_id: str, subject: str, audience: str, kid: str | None,
                   lifetime: int = 300) -> str:
    """Sign an RFC 7523 assertion the way a client does (the private key stays on the client)."""
    import secrets as _secrets

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    if isinstance(private_key, rsa.RSAPrivateKey):
        alg = "RS256"
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[private_key.curve.name]
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    else:
        raise click.UsageError("unsupported private key type")
    now = int(time.time())
    claims = {"iss": client_id, "sub": subject, "aud": audience, "iat": now, "exp": now + lifetime,
              "jti": _secrets.token_urlsafe(16)}
    return jwt.encode(claims, private_key, algorithm=alg, headers={"kid": kid} if kid else None)


@main.command()
@click.option("--key", "key_file", type=click.Path(dir_okay=False, exists=True), required=True, help="The client's private key (PEM).")
@click.option("--client-id", required=True)
@click.option("--subject", required=True, help="The account the token is for (sub).")
@click.option("--kid", default=None)
@click.option("--audience", default=None, help="Default: the issuer's token endpoint.")
@click.option("--lifetime", default=300, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help='Print {"assertion": ...} instead of the bare JWT.')
def assertion(key_file, client_id, subject, kid, audience, lifetime, as_json):
    """Sign a fresh JWT bearer assertion with a client's private key (runs on the client side)."""
    from .config import load_settings

    audience = audience or load_settings().token_endpoint
    try:
        signed = sign_assertion(Path(key_file).read_bytes(), client_id, subject, audience, kid, lifetime)
    except (ValueError, TypeError):
        _fail(f"{key_file} is not an unencrypted PEM private key (RSA, EC P-256/384/521 or Ed25519); "
              "the assertion is signed with the client's private key, whose public half the server holds", 2)
    click.echo(json.dumps({"assertion": signed}) if as_json else signed)


@main.command()
@with_app
def demo():
    """Create a ready organization, service account, client, secret and key, and print a curl line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from .services.accounts import create_account
    from .services.apis import BUILTIN_DEFAULT, BUILTIN_MANAGEMENT, MANAGE_SCOPE, builtin_api, grant_client, scopes_of
    from .services.client_keys import add_key
    from .services.client_secrets import add_secret
    from .services.clients import register_client
    from .services.common import current_settings
    from .services.organizations import create_organization

    import secrets as _secrets

    settings = current_settings()
    organization = create_organization("Demo organization")
    service = create_account(organization.org_id, "demo-service", "service")
    admin_email = f"admin-{organization.org_id[4:12]}@demo.example"
    admin_password = _secrets.token_urlsafe(12)
    admin = create_account(organization.org_id, "Demo admin", "user", email=admin_email, password=admin_password, is_admin=True)
    app_client = register_client(organization.org_id, "Demo app", description="Created by 'authserver demo'.")
    default_api, management_api = builtin_api(BUILTIN_DEFAULT), builtin_api(BUILTIN_MANAGEMENT)
    if default_api is not None:
        grant_client(app_client.client_id, default_api.api_id, [s.name for s in scopes_of(default_api)], default=True)
    grant_client(app_client.client_id, management_api.api_id, MANAGE_SCOPE, default=default_api is None)
    new_secret = add_secret(app_client.client_id)
    private_key = ec.generate_private_key(ec.SECP256R1())
    key_path = settings.instance_path / f"demo-client-{app_client.client_id[:8]}.pem"
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_pem = private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    client_key = add_key(app_client.client_id, public_pem, kid="demo-key-1")
    assertion_jwt = sign_assertion(pem, app_client.client_id, service.account_id, settings.token_endpoint, client_key.kid,
                                   lifetime=settings.assertion_max_lifetime)
    curl = (f"curl -s -u '{app_client.client_id}:{new_secret.client_secret}' "
            f"-d grant_type={'urn:ietf:params:oauth:grant-type:jwt-bearer'} -d assertion={assertion_jwt} "
            f"{settings.token_endpoint}")
    payload = {
        "org_id": organization.org_id, "account_id": service.account_id, "client_id": app_client.client_id,
        "secret_id": new_secret.secret_id, "client_secret": new_secret.client_secret, "kid": client_key.kid,
        "private_key_file": str(key_path), "token_endpoint": settings.token_endpoint, "curl": curl,
        "admin_account_id": admin.account_id, "admin_email": admin_email, "admin_password": admin_password,
        "console": settings.issuer + "/console", "management_api": management_api.identifier,
        "default_api": default_api.identifier if default_api is not None else None,
    }
    human = "\n".join([
        f"organization   {organization.org_id}",
        f"account        {service.account_id} (service)",
        f"client_id      {app_client.client_id}",
        f"client_secret  {new_secret.client_secret}   (shown once)",
        f"key            {client_key.kid}; private key in {key_path}",
        f"console        {settings.issuer}/console  sign in as {admin_email} / {admin_password}   (shown once)",
        "",
        f"Get a token (the assertion inside is valid for {settings.assertion_max_lifetime} s and works once):",
        curl,
        "",
        "A fresh assertion for the next request:",
        f"  .venv/bin/authserver assertion --key {key_path} --client-id {app_client.client_id} "
        f"--subject {service.account_id} --kid {client_key.kid}",
        "",
        f"A management API token (the admin {admin.account_id} as subject, resource = the management API):",
        f"  curl -s -u '{app_client.client_id}:{new_secret.client_secret}' "
        f"-d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d resource={management_api.identifier} "
        f"-d scope={MANAGE_SCOPE} -d assertion=$(.venv/bin/authserver assertion --key {key_path} "
        f"--client-id {app_client.client_id} --subject {admin.account_id} --kid {client_key.kid}) "
        f"{settings.token_endpoint}",
    ])
    return payload, human


if __name__ == "__main__":
    main()
