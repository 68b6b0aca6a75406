"""The request hot path's SQL, compiled once per dialect from SQLAlchemy constructs and run on the
pooled DBAPI connection. The token endpoint runs a handful of statements per request; going through
the ORM session for each costs more CPU than the signature checks do.

Every statement here is an ordinary SQLAlchemy construct (so it stays database-agnostic); only the
execution skips the ORM. One connection per request, returned to the pool at teardown."""
from __future__ import annotations

from typing import Any

from flask import g

from .extensions import db


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


def _connection():
    conn = g.get("_hot_connection")
    if conn is None:
        conn = db.engine.raw_connection()
        g._hot_connection = conn
    return conn


def execute(prepared: Prepared, params: dict[str, Any]):
    sql, order, literals = prepared.compiled(db.engine.dialect)
    if literals:
        params = {**literals, **params}
    cursor = _connection().cursor()
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
    conn = g.get("_hot_connection")
    if conn is not None:
        conn.commit()


def rollback() -> None:
    conn = g.get("_hot_connection")
    if conn is not None:
        conn.rollback()


def integrity_error() -> type[Exception]:
    return db.engine.dialect.dbapi.IntegrityError


def release(exc: BaseException | None = None) -> None:
    """Return the request's connection to the pool, rolling back anything left uncommitted."""
    conn = g.pop("_hot_connection", None)
    if conn is not None:
        try:
            conn.rollback()
        finally:
            conn.close()
