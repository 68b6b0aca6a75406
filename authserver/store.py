"""The request hot path's SQL, compiled once per dialect from SQLAlchemy constructs and run on the
pooled DBAPI connection. The token endpoint runs a handful of statements per request; going through
the ORM session for each costs more CPU than the signature checks do.

Every statement here is an ordinary SQLAlchemy construct (so it stays database-agnostic); only the
execution skips the ORM."""
from __future__ import annotations

import fcntl
import os
import threading
import weakref
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event

from .extensions import db

_watched: "weakref.WeakSet" = weakref.WeakSet()

# The connection a request uses: a DBAPI connection each worker thread keeps checked out of the
# engine's pool across requests (a checkout per request costs more than the statements), rolled
# back at the end of every request. Closed when the engine is disposed or the connection fails.
_current: ContextVar[tuple[Any, Any] | None] = ContextVar("authserver_hot_connection", default=None)
_held = threading.local()


def _forget_engine(engine) -> None:
    held = getattr(_held, "by_engine", None)
    if held is not None:
        entry = held.pop(engine, None)
        if entry is not None:
            _close_quietly(entry[0])


def _close_quietly(conn) -> None:
    try:
        conn.close()
    except Exception:  # a broken connection may fail to close; it is gone either way
        pass


class Prepared:
    """A SQLAlchemy statement compiled once for the engine's dialect."""

    __slots__ = ("_build", "_cache")

    def __init__(self, build):
        self._build = build  # a statement, or a callable(dialect_name) -> statement
        self._cache: dict[str, tuple[str, tuple | None, dict]] = {}

    def compiled(self, dialect) -> tuple[str, tuple | None, dict]:
        """(SQL text, positional parameter order or None, literal values bound in the statement)."""
        entry = self._cache.get(dialect.name)
        if entry is None:
            statement = self._build(dialect.name) if callable(self._build) else self._build
            compiled = statement.compile(dialect=dialect)
            literals = {k: v for k, v in compiled.params.items() if v is not None}
            entry = (str(compiled), tuple(compiled.positiontup) if compiled.positional else None, literals)
            self._cache[dialect.name] = entry
        return entry


def _connection() -> tuple[Any, Any]:
    current = _current.get()
    if current is None:
        engine = db.engine
        held = getattr(_held, "by_engine", None)
        if held is None:
            held = _held.by_engine = weakref.WeakKeyDictionary()  # an engine that goes away takes its entry along
        entry = held.get(engine)
        if entry is None or entry[2] != os.getpid():
            if engine not in _watched:
                _watched.add(engine)
                event.listen(engine, "engine_disposed", _forget_engine)
            entry = (engine.raw_connection(), engine.dialect, os.getpid())
            held[engine] = entry
        current = (entry[0], entry[1])
        _current.set(current)
    return current


def execute(prepared: Prepared, params: dict[str, Any]):
    conn, dialect = _connection()
    sql, order, literals = prepared.compiled(dialect)
    if literals:
        params = {**literals, **params}
    cursor = conn.cursor()
    cursor.execute(sql, tuple(params[name] for name in order) if order is not None else params)
    return cursor


def fetch_one(prepared: Prepared, params: dict[str, Any]):
    cursor = execute(prepared, params)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def run(prepared: Prepared, params: dict[str, Any]) -> int:
    cursor = execute(prepared, params)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def commit() -> None:
    current = _current.get()
    if current is not None:
        current[0].commit()


def rollback() -> None:
    current = _current.get()
    if current is not None:
        current[0].rollback()


_lock_files: dict[str, int] = {}


@contextmanager
def write_section():
    """Hold the database's write lock for a short burst of writes ending in commit or rollback.

    SQLite admits one writer at a time, and a writer that finds the lock taken sleeps in steps of
    milliseconds before retrying, far longer than our write bursts last. On a SQLite file the
    workers therefore queue on an advisory file lock, which wakes the next one the moment it is
    released. Other databases lock rows themselves; there this does nothing."""
    engine = db.engine
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    fd = _lock_files.get(path)
    if fd is None:
        fd = _lock_files[path] = os.open(path + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def integrity_error() -> type[Exception]:
    return db.engine.dialect.dbapi.IntegrityError


def release(exc: BaseException | None = None) -> None:
    """End the request's use of its connection, rolling back anything left uncommitted."""
    current = _current.get()
    if current is not None:
        _current.set(None)
        try:
            current[0].rollback()
        except Exception:  # the connection failed: drop it, the next request checks out a new one
            held = getattr(_held, "by_engine", None) or {}
            for key, entry in list(held.items()):
                if entry[0] is current[0]:
                    held.pop(key, None)
            _close_quietly(current[0])
