"""authserver: an OAuth 2.0 authorization server for confidential clients using the JWT bearer grant."""
from __future__ import annotations

import hmac
import os
import time
import uuid
from typing import TYPE_CHECKING

from flask import Flask, Response, g, json, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import event, text

from . import checkpoint
from .config import MIGRATIONS_DIR, Settings, load_settings, make_instance_directory
from .extensions import db, init_migrations

if TYPE_CHECKING:
    from .services.app_services import AppServices

__version__ = "0.1.0"


class _CookieSessionsOutsideOAuth(SecureCookieSessionInterface):
    """The OAuth endpoints authenticate every request themselves and never use the session
    cookie: skip building its signer for them."""

    def open_session(self, app, request):
        if request.path.startswith(("/oauth/", "/.well-known/")):
            return self.make_null_session(app)
        return super().open_session(app, request)


def _sqlite_pragmas(dbapi_connection, connection_record):
    # WAL lets readers and the one writer of several workers proceed together; foreign keys are
    # off by default in SQLite; busy_timeout makes a writer wait for the lock instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # A serving worker checkpoints from a thread instead, off the request path (authserver/checkpoint.py).
    cursor.execute(f"PRAGMA wal_autocheckpoint={checkpoint.commit_checkpoint_pages}")
    cursor.close()


def _engine_options(settings: Settings) -> dict:
    # hide_parameters: a failing statement's error message never carries its values (a secret's or a
    # password's hash, an email) into a log line.
    if settings.database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 10, "check_same_thread": False}, "hide_parameters": True}
    connect_args = {
        "connect_timeout": settings.database_connect_timeout,
        # A partitioned network is noticed within about a minute instead of never (libpq keepalives).
        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        # A statement or a lock wait that hangs ends with an error (a 503 for the client), never a hung worker.
        "options": f"-c statement_timeout={settings.database_statement_timeout_ms} "
                   f"-c lock_timeout={settings.database_lock_timeout_ms}",
    }
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5, "hide_parameters": True,
            "connect_args": connect_args}


def _private_sqlite_file(database_url: str) -> None:
    """Create the SQLite file readable by its owner only (0600) before SQLite does: the WAL and
    shared-memory files SQLite makes beside it take the same mode."""
    from sqlalchemy.engine import make_url

    path = make_url(database_url).database
    if not path or path == ":memory:" or os.path.exists(path):
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # another process made it meanwhile
        pass


def create_app(overrides: dict | None = None, *, serving: bool = True) -> Flask:
    """The application. `serving=False` leaves out its doors — the OAuth endpoints, the console and the
    management API — and keeps its services (the commands' application: it answers no HTTP requests, and
    importing the doors costs over a tenth of a second per command)."""
    settings = load_settings(overrides)
    make_instance_directory(settings.instance_path)
    if settings.database_url.startswith("sqlite"):
        _private_sqlite_file(settings.database_url)
    from .web import AuthserverFlask

    app = AuthserverFlask(__name__, instance_path=str(settings.instance_path), instance_relative_config=False)
    app.config.update(
        SECRET_KEY=settings.session_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="authserver_session",
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
    )
    app.extensions["authserver.settings"] = settings
    app.session_interface = _CookieSessionsOutsideOAuth()
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Client address and scheme as the trusted balancers saw them (rate limits, audit, transport rule).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way to wrap the app
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )

    db.init_app(app)
    init_migrations(app, str(MIGRATIONS_DIR))
    if serving:
        from .csrf import csrf

        csrf.init_app(app)
    with app.app_context():
        if settings.database_url.startswith("sqlite"):
            event.listen(db.engine, "connect", _sqlite_pragmas)

    from .logging_setup import configure_logging

    configure_logging(settings.log_level)
    services = _init_services(app, settings)
    if serving:
        _mount_oauth(app, services)
    from . import store

    app.teardown_appcontext(store.release)
    _register_health(app)
    _register_error_handlers(app)
    _register_favicon(app)
    _register_request_hooks(app)
    if serving:
        _register_optional_blueprints(app)
    return app


def _init_services(app: Flask, settings: Settings) -> AppServices:
    """The application's services (AppServices), built once: what every door and command reaches."""
    from .access_tokens import KeyRing
    from .circuit import RedisCircuit
    from .last_used import LastUsedRecorder
    from .observability import Metrics
    from .ratelimit import DatabaseRateLimiter, RateCounters, RateLimits, RatePolicies, RedisRateLimiter
    from .replay import DatabaseReplayCache, RedisReplayCache, ReplayCache
    from .services.app_services import EXTENSION, AppServices
    from .services.token_issuance import TokenIssuance

    redis_client = None
    if settings.redis_url:
        import redis

        timeout = settings.redis_timeout_ms / 1000
        redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                            socket_keepalive=True)
    circuit = RedisCircuit(settings.redis_cooldown)
    keyring = KeyRing(settings.key_encryption_key, settings.signing_key_refresh)
    replay: ReplayCache = DatabaseReplayCache()
    if redis_client is not None:
        # The longest a token transaction can last: past the deadline it rolls back, and a statement
        # (the commit included) is cut at the statement timeout.
        pending = settings.request_deadline_seconds and (
            settings.request_deadline_seconds + -(-settings.database_statement_timeout_ms // 1000) + 1)
        replay = RedisReplayCache(redis_client, circuit, pending_seconds=pending)
    counters: RateCounters = (RedisRateLimiter(redis_client, circuit) if redis_client is not None
                              else DatabaseRateLimiter())
    rate_limiter = RateLimits(counters, RatePolicies.from_settings(settings))
    key_fetcher = _key_fetcher(settings)  # one per process: its cache serves every request
    services = AppServices(
        settings=settings,
        keyring=keyring,
        replay=replay,
        rate_limiter=rate_limiter,
        issuance=TokenIssuance(settings, replay, rate_limiter, keyring.sign_with_kid),
        key_fetcher=key_fetcher,
        last_used=LastUsedRecorder(app),
        metrics=Metrics(),
        redis=redis_client,
        redis_circuit=circuit,
    )
    app.extensions[EXTENSION] = services
    return services


def _mount_oauth(app: Flask, services: AppServices) -> None:
    """The OAuth endpoints (token, introspection, revocation, metadata, keys) and their caches."""
    from .oauth.access import ClientAccessCache
    from .oauth.assertions import ClientKeyCache
    from .oauth.federation import TrustedIssuerCache
    from .oauth.server import AuthServer, OAuthCaches
    from .oauth.views import bp as oauth_bp

    key_fetcher = services.key_fetcher
    caches = OAuthCaches(client_keys=ClientKeyCache(key_fetcher), client_access=ClientAccessCache(),
                         trusted_issuers=TrustedIssuerCache(key_fetcher))
    app.extensions["authserver.oauth"] = AuthServer(services, caches)
    from .csrf import csrf

    csrf.exempt(oauth_bp)
    app.register_blueprint(oauth_bp)


def _key_fetcher(settings: Settings):
    """The fetcher of clients' key URLs (their jwks_uri), with the CA file of the settings when one is named."""
    import ssl

    from .config import ConfigError
    from .keyfetch import KeyFetcher

    try:
        return KeyFetcher(allow_insecure=settings.key_fetch_allow_insecure, ca_file=settings.key_fetch_ca_file or None)
    except (OSError, ssl.SSLError):
        raise ConfigError(f"AUTHSERVER_KEY_FETCH_CA_FILE {settings.key_fetch_ca_file} holds no PEM CA "
                          "certificate") from None


def _database_writable() -> bool:
    """Whether the database would take a write now, without writing anything."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL statement_timeout = 1000"))
        # A standby, or a database switched to read-only (default_transaction_read_only), takes no write.
        return db.session.execute(text("SELECT current_setting('transaction_read_only')")).scalar() == "off"
    if db.engine.dialect.name == "sqlite":
        connection = db.session.connection()
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file
        connection.exec_driver_sql("ROLLBACK")
        return True
    db.session.execute(text("SELECT 1"))
    return True


def _register_health(app: Flask) -> None:
    from .observability import StoredStateCollector, render_metrics
    from .services.app_services import EXTENSION
    from .services.client_secrets import EXPIRY_WARNING_DAYS, count_expiring_secrets

    stored_state = StoredStateCollector(count_expiring_secrets, EXPIRY_WARNING_DAYS)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        """Ready means able to issue tokens: the database takes writes (not just connections) and
        Redis, when configured, answers. Each check is bounded to about a second."""
        from .lifecycle import draining
        from .outages import note_outage

        if draining():
            return {"status": "draining", "checks": {}}, 503
        checks = {"database": "ok"}
        try:
            if not _database_writable():
                checks["database"] = "read-only"
        except Exception as exc:  # any failure means not ready; the reason goes to the log, not the answer
            note_outage("database", exc)
            checks["database"] = "unreachable"
        finally:
            try:
                db.session.rollback()
            except Exception:  # the connection is gone; the session starts afresh next time
                pass
        if checks["database"] == "ok":
            try:  # the key-encryption key must open the signing key, or every token request would fail
                app.extensions[EXTENSION].keyring.signing_key()
            except Exception:  # a wrong key-encryption key, or no signing key at all
                note_outage("signing key", RuntimeError("the current signing key cannot be loaded"))
                checks["signing_key"] = "unusable"
        redis_client = app.extensions[EXTENSION].redis
        if redis_client is not None:
            try:
                with app.extensions[EXTENSION].redis_circuit.guard():
                    redis_client.ping()
                checks["redis"] = "ok"
            except Exception:  # logged once per outage by the circuit
                checks["redis"] = "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503

    metrics_token = app.extensions["authserver.settings"].metrics_token.encode()

    @app.get("/metrics")
    def metrics():
        if metrics_token and not _bearer_matches(request.headers.get("Authorization", ""), metrics_token):
            return Response("A bearer token is required (AUTHSERVER_METRICS_TOKEN).\n", status=401,
                            content_type="text/plain; charset=utf-8",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"})
        body, content_type = render_metrics(stored_state)
        return Response(body, content_type=content_type)


def _bearer_matches(authorization: str, expected: bytes) -> bool:
    """`Authorization: Bearer <expected>` (RFC 6750 §2.1), compared in constant time."""
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode("utf-8", "replace"), expected)


def _register_error_handlers(app: Flask) -> None:
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/oauth/") or request.path.startswith("/.well-known/"):
            from .oauth.views import oauth_error_for_status  # the door's own module: loaded when serving

            return oauth_error_for_status(exc.code or 400)
        if request.path.startswith("/api/"):
            from .api.problems import from_http_error  # problem+json that keeps headers such as Allow

            return from_http_error(exc)
        if _is_console_path():
            page = _console_error_page(app, exc.code or 500, exc)
            if page is not None:
                return page
        return exc

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        from .outages import RETRY_AFTER_SECONDS, note_outage, outage_component

        try:
            db.session.rollback()
        except Exception:  # the database is gone: nothing to roll back
            pass
        component = outage_component(exc)
        if component is not None:
            note_outage(component, exc)
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
            message = f"The {component} is unavailable; retry in a few seconds."
            if request.path.startswith(("/oauth/", "/.well-known/")):
                body: dict[str, object] = {"error": "temporarily_unavailable", "error_description": message}
                return Response(json.dumps(body), status=503, content_type="application/json", headers=headers)
            if request.path.startswith("/api/"):
                body = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": message}
                return Response(json.dumps(body), status=503, content_type="application/problem+json", headers=headers)
            if _is_console_path():
                page = _console_error_page(app, 503, message=message, headers=headers)
                if page is not None:
                    return page
            return Response(message, status=503, content_type="text/plain", headers=headers)
        request_id = g.get("request_id", "")
        app.logger.exception("unhandled error on %s %s", request.method, request.path, extra={"request_id": request_id})
        if request.path.startswith(("/oauth/", "/.well-known/")):
            body = {"error": "server_error", "error_description": "The server hit an unexpected error."}
            return Response(json.dumps(body), status=500, content_type="application/json")
        if request.path.startswith("/api/"):
            body = {"type": "about:blank", "title": "Internal Server Error", "status": 500}
            return Response(json.dumps(body), status=500, content_type="application/problem+json")
        if _is_console_path():
            page = _console_error_page(app, 500, request_id=request_id)
            if page is not None:
                return page
        return Response("Internal Server Error", status=500)


def _is_console_path() -> bool:
    return request.path == "/console" or request.path.startswith("/console/")


CONSOLE_SERVER_ERRORS = {
    500: ("Something went wrong",
          ("The server hit an unexpected error and did not finish this request. Try again in a moment; if it keeps "
           "happening, give the operator the request ID below.")),
    503: ("Temporarily unavailable", ""),
}


def _console_error_page(app: Flask, status: int, exc: Exception | None = None, *, message: str = "",
                        request_id: str = "", headers: dict | None = None) -> Response | None:
    """An error under /console as a page of the console (its look, a way back, never a traceback), also for
    paths no console route matches, which its blueprint's own error handler never sees. None when the
    console is not installed or the page cannot be rendered (the caller's plain answer stands)."""
    from flask import render_template, url_for
    from werkzeug.exceptions import HTTPException

    if "console" not in app.blueprints:
        return None
    try:
        from .console import views as console_views

        if isinstance(exc, HTTPException) and status < 500:
            if request.blueprint != "console":  # no console route matched: its sign-in check has not run
                try:
                    console_views.require_admin()  # sets g.admin; its redirect for visitors is not wanted here
                except Exception:  # the page goes on without the signed-in navigation
                    db.session.rollback()
                    g.admin = None
            body, status = console_views.http_error(exc)
        else:
            # A server error: the page must not need the database (it may be what failed), so it goes without
            # the signed-in navigation, which reads the organization.
            g.admin = None
            title, default_message = CONSOLE_SERVER_ERRORS.get(status, CONSOLE_SERVER_ERRORS[500])
            body = render_template("console/error.html", title=title, message=message or default_message,
                                   request_id=request_id, back_url=url_for("console.index"),
                                   back_label="Back to the console")
        response = app.make_response((body, status))
        if isinstance(exc, HTTPException):
            for name, value in exc.get_headers():
                if name.lower() != "content-type":  # e.g. Allow on a 405
                    response.headers[name] = value
        response.headers.update(headers or {})
        return console_views.security_headers(response)
    except Exception:  # rendering failed too: never a traceback, the plain answer instead
        app.logger.warning("the console's error page could not be rendered", exc_info=True,
                           extra={"request_id": g.get("request_id", "")})
        return None


def _register_favicon(app: Flask) -> None:
    """/favicon.ico, which browsers ask for on every origin: the console's icon (SVG)."""
    from flask import abort, send_from_directory

    @app.get("/favicon.ico")
    def favicon():
        console = app.blueprints.get("console")
        if console is None or console.static_folder is None:
            abort(404)
        return send_from_directory(console.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


def _register_request_hooks(app: Flask) -> None:
    import logging

    from .services.app_services import EXTENSION

    access_log = logging.getLogger("authserver.access")
    metrics = app.extensions[EXTENSION].metrics

    @app.before_request
    def start_timer():
        ctx = g._get_current_object()
        ctx.started = time.perf_counter()
        ctx.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex

    @app.after_request
    def finish(response: Response):
        ctx = g._get_current_object()
        req = request._get_current_object()  # type: ignore[attr-defined]  # the proxy's object, read once
        started = getattr(ctx, "started", None) or time.perf_counter()
        request_id = getattr(ctx, "request_id", "")
        endpoint = req.url_rule.rule if req.url_rule is not None else "unmatched"
        metrics.observe_request(endpoint, response.status_code, started)
        headers = response.headers
        headers["X-Request-Id"] = request_id
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if access_log.isEnabledFor(logging.INFO):
            # Path only: the query string and bodies may carry credentials and are never logged.
            access_log.info(
                "request",
                extra={"request_id": request_id, "method": req.method, "path": req.path,
                       "status": response.status_code, "remote_addr": req.remote_addr,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
            )
        return response


def _register_optional_blueprints(app: Flask) -> None:
    """The management API and the console."""
    from .api import register as register_api
    from .console import register as register_console

    register_api(app)
    register_console(app)
