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
from .config import PROJECT_ROOT, ConfigError
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

    upgrade(directory=str(PROJECT_ROOT / "migrations"))
    key = ensure_signing_key()
    return {"signing_kid": key.kid, "signing_alg": key.alg}


@main.command()
@with_app
def init():
    """Migrate the schema to the latest version and create a signing key if none."""
    result = initialise()
    return result, f"Database ready. Signing key {result['signing_kid']} ({result['signing_alg']})."


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="gunicorn workers (default from config/gunicorn.conf.py)")
@click.option("--json", "as_json", is_flag=True, help="Print where it serves as one JSON document on stdout.")
def serve(host: str, port: int, workers: int | None, as_json: bool):
    """Initialise if needed, then serve with gunicorn."""
    app = _app()
    with app.app_context():
        initialise()
        settings = app.extensions["authserver.settings"]
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
    argv = [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "config" / "gunicorn.conf.py"),
            "--pythonpath", str(PROJECT_ROOT), "-b", f"{host}:{port}"]
    if workers:
        argv += ["-w", str(workers)]
    argv.append("wsgi:app")
    os.execv(sys.executable, argv)


# --- organizations and accounts -------------------------------------------------------------

@main.group()
def org():
    """Organizations."""


@org.command("create")
@click.argument("name")
@with_app
def org_create(name):
    from .services.organizations import create_organization

    o = create_organization(name)
    return {"org_id": o.org_id}, o.org_id


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
    from .services.accounts import create_account

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    a = create_account(org_id, name, kind, email=email, password=password, is_admin=admin)
    return {"account_id": a.account_id}, a.account_id


@account.command("disable")
@click.argument("account_id")
@with_app
def account_disable(account_id):
    from .services.accounts import disable_account

    a = disable_account(account_id)
    return _account_json(a), f"Account {a.account_id} disabled."


@account.command("list")
@click.argument("org_id")
@with_app
def account_list(org_id):
    from .services.accounts import list_accounts
    from .services.organizations import get_organization

    get_organization(org_id)
    rows = [_account_json(a) for a in list_accounts(org_id)]
    return rows, "\n".join(f"{r['account_id']}  {r['kind']:7}  {r['name']}" for r in rows) or "No accounts."


# --- clients --------------------------------------------------------------------------------

@main.group()
def client():
    """Client applications."""


def client_json(c) -> dict:
    return {"client_id": c.client_id, "org_id": c.org_id, "name": c.name, "description": c.description,
            "scope": c.scope, "resource_server": c.resource_server, "has_icon": c.icon is not None,
            "created_at": clock.isoformat(c.created_at)}


@client.command("create")
@click.argument("org_id")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--icon", type=click.Path(dir_okay=False), default=None, help="PNG, JPEG, GIF or WebP, at most 256 KiB.")
@click.option("--scope", default=None, help='Allowed scopes, space-delimited, e.g. "read write".')
@click.option("--resource-server", is_flag=True, help="May introspect tokens of every organization.")
@click.option("--type", "client_type", default="confidential", help="Only 'confidential' is supported.")
@with_app
def client_create(org_id, name, description, icon, scope, resource_server, client_type):
    from .errors import InvalidInput
    from .services.clients import register_client

    icon_bytes = None
    if icon is not None:
        try:
            with open(icon, "rb") as fh:
                icon_bytes = fh.read(300 * 1024)
        except OSError as exc:
            raise InvalidInput(f"cannot read icon file: {exc.strerror}") from None
    c = register_client(org_id, name, description=description, icon=icon_bytes, scope=scope,
                        resource_server=resource_server, client_type=client_type)
    return {"client_id": c.client_id}, c.client_id


@client.command("list")
@click.argument("org_id")
@with_app
def client_list(org_id):
    from .services.clients import list_clients
    from .services.organizations import get_organization

    get_organization(org_id)
    rows = [client_json(c) for c in list_clients(org_id)]
    return rows, "\n".join(f"{r['client_id']}  {r['name']}" for r in rows) or "No clients."


@client.command("show")
@click.argument("client_id")
@with_app
def client_show(client_id):
    from .services.clients import get_client

    data = client_json(get_client(client_id))
    return data, json.dumps(data, indent=2, sort_keys=True)


@client.command("delete")
@click.argument("client_id")
@with_app
def client_delete(client_id):
    from .services.clients import delete_client

    delete_client(client_id)
    return {"deleted": client_id}, f"Client {client_id} deleted; its tokens are inactive."


# --- secrets --------------------------------------------------------------------------------

@main.group()
def secret():
    """Client secrets (shown once, stored as hashes)."""


@secret.command("add")
@click.argument("client_id")
@with_app
def secret_add(client_id):
    from .services.client_secrets import add_secret

    new = add_secret(client_id)
    human = (f"secret_id:     {new.secret_id}\nclient_secret: {new.client_secret}\n"
             "This secret is shown once and cannot be retrieved again. Store it now.")
    return {"secret_id": new.secret_id, "client_secret": new.client_secret}, human


def secret_json(s) -> dict:
    return {"secret_id": s.secret_id, "created_at": clock.isoformat(s.created_at),
            "last_used_at": clock.isoformat(s.last_used_at)}


@secret.command("list")
@click.argument("client_id")
@with_app
def secret_list(client_id):
    from .services.client_secrets import list_secrets

    rows = [secret_json(s) for s in list_secrets(client_id)]
    return rows, "\n".join(f"{r['secret_id']}  created {r['created_at']}  last used {r['last_used_at'] or 'never'}" for r in rows) or "No secrets."


@secret.command("delete")
@click.argument("client_id")
@click.argument("secret_id")
@with_app
def secret_delete(client_id, secret_id):
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
    from .errors import InvalidInput
    from .services.client_keys import add_key

    try:
        text = Path(file).read_bytes()[:65536]
    except OSError as exc:
        raise InvalidInput(f"cannot read key file: {exc.strerror}") from None
    k = add_key(client_id, text, kid=kid)
    return {"kid": k.kid}, k.kid


@key.command("list")
@click.argument("client_id")
@with_app
def key_list(client_id):
    from .services.client_keys import list_keys

    rows = [key_json(k) for k in list_keys(client_id)]
    return rows, "\n".join(f"{r['kid']}  {r['key_type']}  created {r['created_at']}" for r in rows) or "No keys."


@key.command("delete")
@click.argument("client_id")
@click.argument("kid")
@with_app
def key_delete(client_id, kid):
    from .services.client_keys import delete_key

    delete_key(client_id, kid)
    return {"deleted": kid}, f"Key {kid} deleted."


# --- server keys and housekeeping -----------------------------------------------------------

@main.group("signing-key")
def signing_key():
    """The server's access-token signing keys."""


@signing_key.command("rotate")
@with_app
def signing_key_rotate():
    from .services.signing_keys import rotate_signing_key

    k = rotate_signing_key()
    return {"kid": k.kid, "alg": k.alg}, f"New signing key {k.kid} ({k.alg}); older keys stay published until their tokens expire."


def purge_once() -> dict:
    from .services.tokens import purge_expired
    from flask import current_app

    result = purge_expired()
    result["rate_limit_counters"] = current_app.extensions["authserver.oauth"].runtime.rate_limiter.purge()
    return result


@main.command()
@click.option("--every", type=int, default=0, help="Repeat every N seconds until stopped (the background purger).")
@with_app
def purge(every):
    """Delete expired token records, used assertion ids and rate-limit windows."""
    import logging

    log = logging.getLogger("authserver.purge")
    result = purge_once()
    while every > 0:
        log.info("purged", extra=result)
        time.sleep(every)
        try:
            result = purge_once()
        except Exception:  # a database hiccup must not end the background purger
            log.exception("purge failed; retrying at the next interval")
            from .extensions import db

            db.session.rollback()
    return result, (f"Purged {result['access_tokens']} expired tokens, {result['used_assertions']} used assertion ids "
                    f"and {result['rate_limit_counters']} rate-limit windows.")


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
    signed = sign_assertion(Path(key_file).read_bytes(), client_id, subject, audience, kid, lifetime)
    click.echo(json.dumps({"assertion": signed}) if as_json else signed)


@main.command()
@with_app
def demo():
    """Create a ready organization, service account, client, secret and key, and print a curl line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from .services.accounts import create_account
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
    app_client = register_client(organization.org_id, "Demo app", description="Created by 'authserver demo'.", scope="read write manage")
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
        "console": settings.issuer + "/console",
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
    ])
    return payload, human


if __name__ == "__main__":
    main()
