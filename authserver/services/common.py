"""Helpers shared by the services: actors, transactions, input checks."""
from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeGuard, TypeVar, cast

from sqlalchemy import CursorResult, Executable

from ..config import current_settings as current_settings  # the services' one way to the settings
from ..errors import InvalidInput
from ..extensions import db

P = ParamSpec("P")
R = TypeVar("R")

NAME_MAX = 100
DESCRIPTION_MAX = 1000
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def affected_rows(statement: Executable) -> int:
    """Run an UPDATE or DELETE in the session's transaction: how many rows it changed."""
    return cast("CursorResult[Any]", db.session.execute(statement)).rowcount or 0


@dataclass(frozen=True)
class Actor:
    """Who performs a change, for the audit log."""

    actor_id: str
    ip_address: str | None = None


CLI_ACTOR = Actor("cli")


def transactional(func: Callable[P, R]) -> Callable[P, R]:
    """Run a service function as one transaction: commit on success, roll back on any error."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = func(*args, **kwargs)
            db.session.commit()
            return result
        except BaseException:
            db.session.rollback()
            raise

    return wrapper


def is_identifier(value: object, max_length: int = 128) -> TypeGuard[str]:
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


SCOPE_TOKEN_MAX = 64
# RFC 6749 §3.3: scope = scope-token *( SP scope-token ), exactly: one space between tokens, none
# before or after, no other whitespace (fullmatch: "$" would let a trailing newline through).
SCOPE_PARAMETER = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")


def clean_scope_token(value: object, field: str = "scope") -> str:
    """One scope name: an RFC 6749 §3.3 scope-token of at most SCOPE_TOKEN_MAX characters."""
    if not isinstance(value, str) or not SCOPE_TOKEN.fullmatch(value) or len(value) > SCOPE_TOKEN_MAX:
        raise InvalidInput(
            f"A scope name must be 1 to {SCOPE_TOKEN_MAX} printable ASCII characters without spaces, "
            "double quotes or backslashes (RFC 6749 section 3.3).",
            field=field,
        )
    return value


def parse_scope_list(value: object) -> list[str]:
    """Scope names given by an administrator: a space-delimited string or a list (duplicates removed)."""
    if value is None:
        return []
    if isinstance(value, str):
        tokens = [t for t in value.split(" ") if t != ""]
    elif isinstance(value, (list, tuple)):
        tokens = list(value)
    else:
        raise InvalidInput("Scope must be a space-delimited string or a list of names.", field="scope")
    names = [clean_scope_token(t) for t in tokens]
    return sorted(set(names))


def parse_scope_parameter(value: str) -> list[str] | None:
    """The scope request parameter (RFC 6749 §3.3) as its tokens, or None when it breaks the grammar."""
    if not SCOPE_PARAMETER.fullmatch(value):
        return None
    return value.split(" ")
