"""The request hot path's SQL, compiled once per dialect from SQLAlchemy constructs and run on a
DBAPI connection from the engine's pool. The token endpoint runs a handful of statements per request; going through
the ORM session for each costs more CPU than the signature checks do.

Every statement here is an ordinary SQLAlchemy construct (so it stays database-agnostic); only the
execution skips the ORM."""
from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event

from .extensions import db

# The connection a request uses. Idle DBAPI connections wait in a list per engine between requests
# (a checkout from SQLAlchemy's pool per request costs more than the statements do); a request
# takes one, and at its end rolls back whatever it left open and puts it back. At most as many
# connections exist as requests ran at once. Disposing of the engine closes the idle ones.
_current: ContextVar[tuple[Any, Any, Any] | None] = ContextVar("authserver_hot_connection", default=None)
_idle: weakref.WeakKeyDictionary[Any, deque[tuple[Any, Any, int]]] = weakref.WeakKeyDictionary()
_idle_lock = threading.Lock()


def _idle_list(engine: Any) -> deque[tuple[Any, Any, int]]:
    idle = _idle.get(engine)
    if idle is None:
        with _idle_lock:
            idle = _idle.get(engine)
            if idle is None:
                idle = _idle[engine] = deque()
                event.listen(engine, "engine_disposed", _close_idle)
    return idle


def _close_idle(engine: Any) -> None:
    idle = _idle.get(engine)
    while idle:
        try:
            _close_quietly(idle.pop()[0])
        except IndexError:
            break


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # a broken connection may fail to close; it is gone either way
        pass


class Prepared:
    """A SQLAlchemy statement compiled once for the engine's dialect."""

    __slots__ = ("_build", "_cache")

    def __init__(self, build: Any) -> None:
        self._build = build  # a statement, or a callable(dialect_name) -> statement
        self._cache: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def compiled(self, dialect: Any) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        """(SQL text, positional parameter order or None, literal values bound in the statement)."""
        entry = self._cache.get(dialect.name)
        if entry is None:
            statement = self._build(dialect.name) if callable(self._build) else self._build
            compiled = statement.compile(dialect=dialect)
            literals = {k: v for k, v in compiled.params.items() if v is not None}
            entry = (str(compiled), tuple(compiled.positiontup) if compiled.positional else None, literals)
            self._cache[dialect.name] = entry
        return entry


# How many requests of this process may hold a hot-path connection at once. Those connections come
# from the engine's pool and stay checked out while idle, so they get a share of the pool, and the
# ORM (which a request may use after the hot path, never before) keeps the rest: a request holding
# a hot-path connection never waits for one that only another such request could give back. With
# sync workers (one request at a time) this never waits; with gevent it bounds the concurrency.
_budgets: weakref.WeakKeyDictionary[Any, threading.BoundedSemaphore] = weakref.WeakKeyDictionary()
_holding: ContextVar[Any] = ContextVar("authserver_hot_connection_budget", default=None)
BUDGET_WAIT_SECONDS = 10


def _budget(engine: Any) -> threading.BoundedSemaphore:
    budget = _budgets.get(engine)
    if budget is None:
        with _idle_lock:
            budget = _budgets.get(engine)
            if budget is None:
                pool = engine.pool
                size = pool.size() + max(getattr(pool, "_max_overflow", 0), 0) if hasattr(pool, "size") else 0
                budget = _budgets[engine] = threading.BoundedSemaphore(max(size - 3, 1) if size else 64)
    return budget


def _connection(fresh: bool = False) -> tuple[Any, Any, Any]:
    current = _current.get()
    if current is None:
        engine = db.engine
        if _holding.get() is None:
            budget = _budget(engine)
            if not budget.acquire(timeout=BUDGET_WAIT_SECONDS):
                from sqlalchemy.exc import TimeoutError as PoolTimeout

                raise PoolTimeout("every database connection of this worker's hot path is in use")
            _holding.set(budget)
        idle = _idle_list(engine)
        pid = os.getpid()
        current = None
        while idle and not fresh:
            try:
                conn, dialect, owner = idle.pop()
            except IndexError:
                break
            if owner == pid:  # never a connection inherited across fork
                current = (conn, dialect, engine)
                break
        if current is None:
            current = (engine.raw_connection(), engine.dialect, engine)
        _in_transaction.set(False)
        _current.set(current)
    return current


# True once a statement ran since the last commit or rollback. A statement that finds the connection
# dead (the database restarted or failed over while it sat idle) outside a transaction has lost
# nothing: the connection is replaced and the statement runs once more. Inside one it is an error.
_in_transaction: ContextVar[bool] = ContextVar("authserver_hot_connection_in_transaction", default=False)


def _is_disconnect(exc: Exception, conn: Any, dialect: Any) -> bool:
    dbapi = dialect.loaded_dbapi
    if not isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError)):
        return False
    try:
        return bool(dialect.is_disconnect(exc, getattr(conn, "dbapi_connection", conn), None))
    except Exception:  # the dialect could not tell: not a known disconnect
        return False


def execute(prepared: Prepared, params: dict[str, Any]) -> Any:
    conn, dialect, _ = _connection()
    sql, order, literals = prepared.compiled(dialect)
    if literals:
        params = {**literals, **params}
    values: Any = tuple(params[name] for name in order) if order is not None else params
    cursor = conn.cursor()
    try:
        cursor.execute(sql, values)
    except Exception as exc:
        if _in_transaction.get() or not _is_disconnect(exc, conn, dialect):
            raise
        _current.set(None)
        _close_quietly(conn)
        conn, dialect, _ = _connection(fresh=True)
        cursor = conn.cursor()
        cursor.execute(sql, values)
    _in_transaction.set(True)
    return cursor


def dialect_name() -> str:
    """The database of the request's connection ("sqlite", "postgresql"), taking one if it has none yet."""
    return str(_connection()[1].name)


def fetch_one(prepared: Prepared, params: dict[str, Any]) -> Any:
    cursor = execute(prepared, params)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def fetch_all(prepared: Prepared, params: dict[str, Any]) -> list[Any]:
    cursor = execute(prepared, params)
    try:
        rows: list[Any] = cursor.fetchall()
        return rows
    finally:
        cursor.close()


def run(prepared: Prepared, params: dict[str, Any]) -> int:
    cursor = execute(prepared, params)
    try:
        count: int = cursor.rowcount
        return count
    finally:
        cursor.close()


def commit() -> None:
    current = _current.get()
    if current is not None:
        current[0].commit()
        _in_transaction.set(False)


def rollback() -> None:
    current = _current.get()
    if current is not None:
        _in_transaction.set(False)
        current[0].rollback()


_lock_files: dict[tuple[str, int], int] = {}
_thread_write_lock = threading.Lock()  # flock does not exclude threads sharing one descriptor


@contextmanager
def write_section() -> Iterator[None]:
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
    with sqlite_write_lock(path):
        yield


@contextmanager
def sqlite_write_lock(path: str) -> Iterator[None]:
    """The write lock of the SQLite file at `path` that write_section() holds, for the threads and
    processes that write to it outside a request (authserver/checkpoint.py)."""
    key = (path, os.getpid())  # a forked worker opens its own descriptor: flock locks are per descriptor
    fd = _lock_files.get(key)
    if fd is None:
        fd = _lock_files[key] = os.open(path + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
    with _thread_write_lock:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def integrity_error() -> type[Exception]:
    dbapi = db.engine.dialect.dbapi
    assert dbapi is not None  # every dialect the server supports has a DB-API module
    return dbapi.IntegrityError


def release(exc: BaseException | None = None) -> None:
    """End the request's use of its connection: roll back anything left open and keep it for the next."""
    current = _current.get()
    budget = _holding.get()
    if budget is not None:
        _holding.set(None)
        budget.release()
    if current is None:
        return
    _current.set(None)
    _in_transaction.set(False)
    conn, dialect, engine = current
    try:
        conn.rollback()
    except Exception:  # the connection failed: drop it, a later request opens a new one
        _close_quietly(conn)
        return
    _idle_list(engine).append((conn, dialect, os.getpid()))
