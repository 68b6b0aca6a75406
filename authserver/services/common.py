"""Helpers shared by the services: actors, transactions, input checks."""
from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass

from ..errors import InvalidInput
from ..extensions import db

NAME_MAX = 100
DESCRIPTION_MAX = 1000
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


@dataclass(frozen=True)
class Actor:
    """Who performs a change, for the audit log."""

    actor_id: str
    ip_address: str | None = None


CLI_ACTOR = Actor("cli")


def transactional(func):
    """Run a service function as one transaction: commit on success, roll back on any error."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            result = func(*args, **kwargs)
            db.session.commit()
            return result
        except BaseException:
            db.session.rollback()
            raise

    return wrapper


def is_identifier(value: object, max_length: int = 128) -> bool:
    """Whether a value can name a stored object at all: printable text of bounded length. Anything
    else is simply not found (PostgreSQL refuses NUL in text, so it must never reach a query)."""
    return isinstance(value, str) and 0 < len(value) <= max_length and value.isprintable()


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(10)


def clean_name(value: object, what: str = "Name") -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text.", field="name")
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} is required.", field="name")
    if len(value) > NAME_MAX:
        raise InvalidInput(f"{what} must be at most {NAME_MAX} characters.", field="name")
    if not value.isprintable():
        raise InvalidInput(f"{what} must not contain control characters.", field="name")
    return value


def clean_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("Description must be text.", field="description")
    value = value.strip()
    if len(value) > DESCRIPTION_MAX:
        raise InvalidInput(f"Description must be at most {DESCRIPTION_MAX} characters.", field="description")
    if any(not (ch.isprintable() or ch in "\n\r\t") for ch in value):
        raise InvalidInput("Description must not contain control characters.", field="description")
    return value


def clean_scope(value: object) -> str:
    """Normalise a space-delimited scope list (RFC 6749 §3.3): unique tokens, sorted."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        tokens = list(value)
    elif isinstance(value, str):
        tokens = value.split(" ")
    else:
        raise InvalidInput("Scope must be a space-delimited string.", field="scope")
    tokens = [t for t in tokens if t != ""]
    for token in tokens:
        if not isinstance(token, str) or not SCOPE_TOKEN.match(token) or len(token) > 64:
            raise InvalidInput(
                "Each scope must be 1 to 64 printable ASCII characters without spaces, quotes or backslashes.",
                field="scope",
            )
    if len(tokens) > 50:
        raise InvalidInput("A client may have at most 50 scopes.", field="scope")
    return " ".join(sorted(set(tokens)))


def current_settings():
    """The Settings of the running app."""
    from flask import current_app

    return current_app.extensions["authserver.settings"]
