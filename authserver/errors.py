"""Domain failures: one exception type each. They carry what went wrong, never how a door answers it:
each front door maps them once (the management API to problem+json statuses in api/problems.py, the
console to pages and form errors in console/feedback.py, the command line to exit codes in cli/output.py)."""
from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused an operation. `message` is safe to show to the caller."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """What was given breaks a rule (a malformed value, a missing field, a limit exceeded)."""


class PublicClientRefused(InvalidInput):
    """A public client was asked for: only confidential clients are supported."""


class NotFound(DomainError):
    """The object does not exist, or belongs to another organization (the two are not told apart)."""


class Conflict(DomainError):
    """The change conflicts with the current state (a duplicate, the last admin, an API still in use)."""


class Forbidden(DomainError):
    """The caller may not do this."""


class Unauthenticated(DomainError):
    """No usable credentials were presented (RFC 6750 §3.1: no error code in the challenge)."""


class InvalidToken(Unauthenticated):
    """A bearer token that is malformed, expired, revoked or not ours (RFC 6750 §3.1 invalid_token)."""


class InsufficientScope(Forbidden):
    """A valid token that lacks the scope the request needs (RFC 6750 §3.1 insufficient_scope)."""
