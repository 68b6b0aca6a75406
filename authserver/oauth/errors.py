"""RFC 6749 §5.2 errors as Authlib renders them, with a few adjustments (every error has a description)."""
from __future__ import annotations

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import errors as authlib_errors
from authlib.oauth2.rfc6749.errors import (  # noqa: F401  (re-exported: one place to import errors from)
    InsecureTransportError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)


class InvalidClientError(authlib_errors.InvalidClientError):
    """Always 401 (RFC 6749 §5.2); the Basic challenge only when the client tried Basic."""

    status_code = 401

    def __init__(self, description: str, basic_used: bool = False):
        super().__init__(description=description, status_code=401)
        self.basic_used = basic_used

    def get_headers(self):
        headers = super().get_headers()
        if not self.basic_used:
            headers = [h for h in headers if h[0] != "WWW-Authenticate"]
        return headers


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the resource is invalid, unknown, not allowed for this client, or more than one."""

    error = "invalid_target"
    status_code = 400

    def __init__(self, description: str):
        super().__init__(description=description)


class TemporarilyUnavailableError(OAuth2Error):
    """A shared component (database, replay cache) is unreachable: fail closed."""

    error = "temporarily_unavailable"
    status_code = 503

    def get_headers(self):
        from ..outages import RETRY_AFTER_SECONDS

        return super().get_headers() + [("Retry-After", str(RETRY_AFTER_SECONDS))]


class RequestTooLargeError(InvalidRequestError):
    status_code = 413


class SlowDownError(OAuth2Error):
    """Too many requests (rate limit). Sent with Retry-After."""

    error = "slow_down"
    status_code = 429

    def __init__(self, description: str, retry_after: int):
        super().__init__(description=description)
        self.retry_after = retry_after

    def get_headers(self):
        return super().get_headers() + [("Retry-After", str(self.retry_after))]
