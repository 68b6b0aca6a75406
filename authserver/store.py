"""The request hot path's SQL, compiled once per dialect from SQLAlchemy constructs and run on the
pooled DBAPI connection. The token endpoint runs a handful of statements per request; going through
the ORM session for each costs more CPU than the signature checks do.

Every statement here is an ordinary SQLAlchemy construct (so it stays database-agnostic); only the
execution skips the ORM. One connection per request, returned to the pool at teardown."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from .extensions import db

# (DBAPI connection, dialect) of the current request; a context variable is cheaper than flask.g.
_current: ContextVar[tuple[Any, Any] | None] = ContextVar("authserver_hot_connection", default=None)


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
        current = (engine.raw_connection(), engine.dialect)
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


def integrity_error() -> type[Exception]:
    return db.engine.dialect.dbapi.IntegrityError


def release(exc: BaseException | None = None) -> None:
    """Return the request's connection to the pool, rolling back anything left uncommitted."""
    current = _current.get()
    if current is not None:
        _current.set(None)
        try:
            current[0].rollback()
        finally:
            current[0].close()
