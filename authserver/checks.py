"""Startup checks an operator runs before serving (`authserver config check`): each class of mistake
has one clear line and its own exit code, never a traceback."""
from __future__ import annotations

import os
from dataclasses import dataclass

# The classes of mistake a check finds; the command line maps each to its own exit code.
SETTINGS = "settings"
INSTANCE = "instance"
DATABASE = "database"
SCHEMA = "schema"
KEY_ENCRYPTION = "key-encryption"
REDIS = "redis"


@dataclass(frozen=True)
class CheckFailed(Exception):
    message: str
    kind: str


def check_instance_path(settings) -> str:
    path = settings.instance_path
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise CheckFailed(f"the instance directory {path} is not a writable directory", INSTANCE)
    return f"instance directory {path} is writable"


def check_database() -> str:
    from sqlalchemy import text

    from .extensions import db

    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # reported as one line, whatever the driver says
        first = (str(getattr(exc, "orig", exc)).strip().splitlines() or [""])[0][:200]
        raise CheckFailed(f"the database cannot be reached: {first}", DATABASE) from None
    finally:
        db.session.rollback()
    return f"database {db.engine.url.render_as_string(hide_password=True)} answers"


def check_schema() -> str:
    from . import schema
    from .extensions import db

    head = schema.head_revision()
    with db.engine.connect() as conn:
        current = schema.current_revision(conn)
    if current != head:
        raise CheckFailed(f"the database schema is at {current or 'nothing'}, this version needs {head}: "
                          "run 'authserver init'", SCHEMA)
    return f"schema is at {head}"


def check_key_encryption_key(settings) -> str:
    """The key-encryption key must open every stored signing key that may still sign or verify."""
    from sqlalchemy import select

    from .crypto.signing import decrypt_private_key
    from .extensions import db
    from .models import SigningKey

    rows = db.session.execute(select(SigningKey.kid, SigningKey.private_key_encrypted)
                              .where(SigningKey.withdrawn_at.is_(None))).all()
    for kid, encrypted in rows:
        try:
            decrypt_private_key(encrypted, settings.key_encryption_key)
        except Exception:  # a wrong key, whatever the library raises
            raise CheckFailed(f"AUTHSERVER_KEY_ENCRYPTION_KEY does not open the stored signing key {kid}: "
                              "set the key the keys were created with", KEY_ENCRYPTION) from None
    return f"the key-encryption key opens all {len(rows)} signing key(s)"


def check_redis(app) -> str:
    client = app.extensions["authserver.services"].redis  # services.app_services.AppServices
    if client is None:
        return "no Redis configured (the database keeps replay records and rate limits)"
    try:
        client.ping()
    except Exception as exc:  # any failure to answer
        raise CheckFailed(f"Redis cannot be reached: {type(exc).__name__}", REDIS) from None
    return "Redis answers"


def run_checks(app) -> list[str]:
    settings = app.extensions["authserver.settings"]
    results = [check_instance_path(settings), check_database(), check_schema()]
    results.append(check_key_encryption_key(settings))
    results.append(check_redis(app))
    return results
