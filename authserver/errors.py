"""Domain failures: one exception type each, mapped once per front door
(RFC 6749 JSON, problem+json, console flash message, CLI exit code)."""
from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused an operation. `message` is safe to show to the caller."""

    status = 400
    title = "Invalid request"
    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    title = "Invalid input"


class PublicClientRefused(InvalidInput):
    title = "Public clients are not supported"


class NotFound(DomainError):
    status = 404
    title = "Not found"
    exit_code = 3


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    exit_code = 4


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    exit_code = 5


class Unauthenticated(DomainError):
    """No usable credentials were presented (RFC 6750 §3.1: no error code in the challenge)."""

    status = 401
    title = "Authentication required"
    exit_code = 6


class InvalidToken(Unauthenticated):
    """A bearer token that is malformed, expired, revoked or not ours (RFC 6750 §3.1 invalid_token)."""

    title = "Invalid access token"


class InsufficientScope(Forbidden):
    """A valid token that lacks the scope the request needs (RFC 6750 §3.1 insufficient_scope)."""

    title = "Insufficient scope"
