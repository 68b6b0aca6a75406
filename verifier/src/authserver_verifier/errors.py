"""Why a token was refused, in the terms of RFC 6750 §3.1."""
from __future__ import annotations

from collections.abc import Iterable


class VerificationError(Exception):
    """A token was not accepted, or could not be checked.

    ``error`` is the RFC 6750 error code, ``status_code`` the HTTP status a resource server answers
    with, ``description`` a sentence for a person (it never contains the token).
    """

    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes the request needed (only ``InsufficientScope`` carries them)."""
        return ()


class InvalidToken(VerificationError):
    """RFC 6750 ``invalid_token``: expired, revoked, malformed, badly signed or meant for someone else."""

    error = "invalid_token"
    status_code = 401


class InsufficientScope(VerificationError):
    """RFC 6750 ``insufficient_scope``: a valid token without every scope the request needs."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str, required_scopes: Iterable[str]):
        super().__init__(description)
        self.required_scopes = tuple(sorted(set(required_scopes)))

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.required_scopes


class VerifierUnavailable(VerificationError):
    """The authorization server's metadata, keys or introspection endpoint could not be used, and no
    cached keys can stand in: the token can be neither accepted nor refused (HTTP 503)."""

    error = "temporarily_unavailable"
    status_code = 503
