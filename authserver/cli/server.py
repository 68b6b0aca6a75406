"""The command line: setting up and running the server: init, serve, config, purge."""
from __future__ import annotations

import json
import os
import sys

import click

from ..config import MIGRATIONS_DIR, issuer_configured
from ..extensions import db
from .output import CHECK_EXIT_CODES, EXIT_INSTANCE, EXIT_INVALID, emit, fail, make_app, with_app


def initialise() -> dict:
    from .. import schema
    from ..services.apis import ensure_platform_apis
    from ..services.signing_keys import ensure_signing_key

    # A database already at this version's schema (every restart) is left alone without loading Alembic.
    with db.engine.connect() as connection:
        current = schema.is_current(connection)
    if not current:
        from flask_migrate import upgrade

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
    # prometheus_client picks its multiprocess mode when it is first imported (by the application below):
    # the directory must be named before, and exist, or the workers would each count alone.
    metrics_dir = _metrics_directory(port)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    app = make_app(serving=True)
    with app.app_context():
        initialise()
        settings = app.extensions["authserver.settings"]
        # No connection of this process's may reach the workers it forks: the session's connection goes back
        # to the pool first (dispose() closes only the connections in the pool).
        db.session.remove()
        db.engine.dispose()
    del app
    from ..config import SERVED_ISSUER_FILE

    served = settings.instance_path / SERVED_ISSUER_FILE
    if derived:
        served.write_text(settings.issuer + "\n")
    elif served.exists():
        served.unlink()
    os.environ["AUTHSERVER_INSTANCE_PATH"] = str(settings.instance_path)
    if as_json:
        click.echo(json.dumps({"issuer": settings.issuer, "url": f"http://{host}:{port}",
                               "metadata": f"{settings.issuer}/.well-known/oauth-authorization-server",
                               "console": f"{settings.issuer}/console"}, sort_keys=True))
        sys.stdout.flush()
    click.echo(f"authserver serving {settings.issuer} on http://{host}:{port}", err=True)
    click.echo(f"  metadata: http://{host}:{port}/.well-known/oauth-authorization-server", err=True)
    click.echo(f"  console:  http://{host}:{port}/console", err=True)
    from ..config import issuer_allows_plain_http

    if not settings.issuer.startswith("https://") and not issuer_allows_plain_http(settings.issuer):
        # RFC 6749 §3.2: secrets and tokens over plain http only on loopback. Said at start, not first
        # discovered as an insecure_transport answer to every token request.
        click.echo(f"warning: the issuer {settings.issuer} is plain http on an address other than loopback: the "
                   "OAuth endpoints refuse every request (insecure_transport). Serve behind TLS and set "
                   "AUTHSERVER_ISSUER to its https URL (and AUTHSERVER_TRUSTED_PROXIES), or serve on 127.0.0.1.",
                   err=True)
    click.echo(
        "  next: in another terminal, run '.venv/bin/authserver demo' for a ready client and a curl line", err=True
    )
    args = ["-c", "python:authserver.gunicorn_conf", "-b", f"{host}:{port}"]
    if workers:
        args += ["-w", str(workers)]
    args.append("authserver.wsgi:app")
    if settings.worker_class != "sync":
        # gevent patches each worker before the application's modules (and their locks) are imported:
        # a fresh interpreter, which imports only gunicorn and the settings before forking.
        os.execv(sys.executable, [sys.executable, "-m", "gunicorn", *args])
    _run_gunicorn(args)


def _metrics_directory(port: int):
    """prometheus_client's multiprocess directory for the server on this port, in the instance directory,
    emptied of an earlier run's files."""
    from ..config import ConfigError, load_settings, make_instance_directory

    try:
        instance_path = load_settings().instance_path
        make_instance_directory(instance_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)
    metrics_dir = instance_path / f"prometheus-{port}"
    try:
        metrics_dir.mkdir(exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
    except OSError as exc:
        fail(f"the metrics directory {metrics_dir} cannot be made or emptied: {exc.strerror}", EXIT_INSTANCE)
    return metrics_dir


def _run_gunicorn(args: list[str]) -> None:
    """gunicorn's master in this process, as `python -m gunicorn ARGS` would run it, without a second
    interpreter: the workers it forks find the application's modules imported (a worker starts in tens of
    milliseconds, not a second), and each makes its own application, connections and threads after the fork,
    as before. sys.argv is gunicorn's only while it reads its options, so that a re-exec (USR2) runs this
    command again."""
    from gunicorn.app.wsgiapp import WSGIApplication

    argv = sys.argv
    sys.argv = ["authserver serve", *args]
    try:
        server = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="authserver serve")
    finally:
        sys.argv = argv
    server.run()


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
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array of {variable, default, meaning} instead of Markdown.")
def config_reference(as_json):
    """Print the configuration reference (Markdown): every setting with its variable, default and meaning."""
    from ..config import reference_entries, reference_markdown

    if as_json:
        emit(True, reference_entries(), "")
        return
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
