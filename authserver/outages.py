"""Outages of a shared component (the database, Redis) as the clients see them: 503 with
Retry-After (RFC 9110 §15.6.4), `temporarily_unavailable` on the OAuth endpoints (RFC 6749 §5.2
extension registry) and problem+json on the management API, and one WARNING line per episode in
the log instead of a traceback per request."""
from __future__ import annotations

import logging
import threading
import time

RETRY_AFTER_SECONDS = 5
LOG_EVERY_SECONDS = 60

_log = logging.getLogger("authserver.outage")
_lock = threading.Lock()
_last_logged: dict[str, float] = {}


def outage_component(exc: BaseException) -> str | None:
    """'database' or 'redis' when the exception says that component cannot be reached or used now."""
    import sqlite3

    import psycopg
    from sqlalchemy import exc as sa_exc

    # The DBAPI's own classes too: the token path runs its statements on DBAPI connections.
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)) or isinstance(
            cause, (sqlite3.OperationalError, psycopg.OperationalError, psycopg.InterfaceError,
                    psycopg.errors.ReadOnlySqlTransaction)):
        # Unreachable, restarting, timed out, out of disk, or read-only (a standby, a read-only file).
        return "database"
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return None
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "redis"
    return None


def note_outage(component: str, exc: BaseException) -> None:
    """One WARNING per component per LOG_EVERY_SECONDS, with the error's kind and first line only (a
    driver's message never holds a secret, but a traceback per request would drown the log)."""
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(component)
        if last is not None and now - last < LOG_EVERY_SECONDS:
            return
        _last_logged[component] = now
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    _log.warning("%s unavailable: %s: %s (further failures in the next %d s are not logged)",
                 component, type(exc).__name__, first_line, LOG_EVERY_SECONDS)
