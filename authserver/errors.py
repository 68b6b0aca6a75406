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
