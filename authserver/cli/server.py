"""The command line: setting up and running the server: init, serve, config, purge."""
from __future__ import annotations

import json
import os
import sys

import click

from ..config import MIGRATIONS_DIR, issuer_configured
from .output import CHECK_EXIT_CODES, emit, fail, make_app, with_app


def initialise() -> dict:
    from flask_migrate import upgrade

    from ..services.apis import ensure_platform_apis
    from ..services.signing_keys import ensure_signing_key

    upgrade(directory=str(MIGRATIONS_DIR))
    key = ensure_signing_key()
    apis = ensure_platform_apis()
    return {"signing_kid": key.kid, "signing_alg": key.alg, **apis}


@click.command()
@with_app
def init():
    """Migrate the schema to the latest version and create a signing key if none."""
    result = initialise()
    return result, f"Database ready. Signing key {result['signing_kid']} ({result['signing_alg']})."


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="gunicorn workers (default: 2 per core, at most 8)")
@click.option("--json", "as_json", is_flag=True, help="Print where it serves as one JSON document on stdout.")
def serve(host: str, port: int, workers: int | None, as_json: bool):
    """Initialise if needed, then serve with gunicorn.

    Without AUTHSERVER_ISSUER the issuer is http://HOST:PORT, so metadata and tokens name the address
    actually served."""
    derived = not issuer_configured()
    if derived:
        os.environ["AUTHSERVER_ISSUER"] = f"http://{host}:{port}"
    app = make_app()
    with app.app_context():
        initialise()
        settings = app.extensions["authserver.settings"]
    from ..config import SERVED_ISSUER_FILE

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
    click.echo(
        "  next: in another terminal, run '.venv/bin/authserver demo' for a ready client and a curl line", err=True
    )
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:authserver.gunicorn_conf", "-b", f"{host}:{port}"]
    if workers:
        argv += ["-w", str(workers)]
    argv.append("authserver.wsgi:app")
    os.execv(sys.executable, argv)


# --- configuration ----------------------------------------------------------------------------

@click.group()
def config():
    """Check the configuration, or generate production secrets."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def config_check(as_json):
    """Run the startup checks: settings, instance directory, database, schema, key-encryption key, Redis.

    Exit codes: 2 settings, 10 instance directory, 11 database, 12 schema, 13 key-encryption key, 14 Redis
    (docs/cli.md)."""
    from ..checks import CheckFailed, run_checks

    app = make_app()
    with app.app_context():
        try:
            results = run_checks(app)
        except CheckFailed as failed:
            fail(failed.message, CHECK_EXIT_CODES[failed.kind])
    emit(as_json, {"ok": True, "checks": results}, "\n".join(f"ok: {line}" for line in results))


@config.command("reference")
def config_reference():
    """Print the configuration reference (markdown): every setting with its variable, default and meaning."""
    from ..config import reference_markdown

    click.echo(reference_markdown(), nl=False)


@config.command("generate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def config_generate(as_json):
    """Print fresh secrets for a production deployment as environment lines (share them between hosts)."""
    import secrets as _secrets

    values = {name: _secrets.token_urlsafe(32) for name in
              ("AUTHSERVER_SECRET_PEPPER", "AUTHSERVER_KEY_ENCRYPTION_KEY", "AUTHSERVER_SESSION_KEY")}
    emit(as_json, values, "\n".join(f"{k}={v}" for k, v in values.items()))


# --- organizations and accounts -------------------------------------------------------------
