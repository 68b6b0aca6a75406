"""How every command answers: one renderer for text and --json, one line on stderr and an exit code for a failure."""
from __future__ import annotations

import functools
import json
import sys

import click

from .. import checks
from ..config import ConfigError
from ..errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated

# Exit codes: one per class of failure, the same for every command (docs/cli.md).
EXIT_INVALID = 2  # invalid input or settings; click uses 2 for a wrong option or argument too
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_FORBIDDEN = 5
EXIT_UNAUTHENTICATED = 6
EXIT_INSTANCE = 10  # the instance directory is not writable
EXIT_DATABASE = 11  # the database cannot be reached
EXIT_SCHEMA = 12  # the schema is missing or not this version's: run `authserver init`
EXIT_KEY_ENCRYPTION = 13  # the key-encryption key opens no stored signing key
EXIT_REDIS = 14  # Redis cannot be reached

_DOMAIN_EXIT_CODES: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, EXIT_NOT_FOUND), (Conflict, EXIT_CONFLICT), (Forbidden, EXIT_FORBIDDEN),
    (Unauthenticated, EXIT_UNAUTHENTICATED), (DomainError, EXIT_INVALID),
)
CHECK_EXIT_CODES = {
    checks.SETTINGS: EXIT_INVALID, checks.INSTANCE: EXIT_INSTANCE, checks.DATABASE: EXIT_DATABASE,
    checks.SCHEMA: EXIT_SCHEMA, checks.KEY_ENCRYPTION: EXIT_KEY_ENCRYPTION, checks.REDIS: EXIT_REDIS,
}


def exit_code(exc: DomainError) -> int:
    return next(code for kind, code in _DOMAIN_EXIT_CODES if isinstance(exc, kind))


def emit(ctx_json: bool, payload, human: str | None = None) -> None:
    if ctx_json:
        click.echo(json.dumps(payload, sort_keys=True))
    else:
        click.echo(human if human is not None else json.dumps(payload, indent=2, sort_keys=True))


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def make_app(*, serving: bool = False):
    from .. import create_app

    try:
        return create_app(serving=serving)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)


def with_app(func):
    """Run the command inside an app context; domain errors become a message on stderr and an exit code."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
    @functools.wraps(func)
    def wrapper(*args, as_json: bool = False, **kwargs):
        app = make_app()
        with app.app_context():
            try:
                payload, human = func(*args, **kwargs)
            except DomainError as exc:
                fail(exc.message, exit_code(exc))
            except Exception as exc:  # a database not yet initialised is the common case
                from sqlalchemy.exc import OperationalError, ProgrammingError

                missing_table = isinstance(exc, ProgrammingError) or "no such table" in str(exc)  # PostgreSQL, SQLite
                if missing_table:
                    fail("the database has no schema yet; run 'authserver init' first", EXIT_SCHEMA)
                if isinstance(exc, OperationalError):
                    first = (str(getattr(exc, "orig", exc)).strip().splitlines() or [""])[0][:200]
                    fail(f"the database cannot be reached: {first}", EXIT_DATABASE)
                raise
            emit(as_json, payload, human)

    return wrapper
