"""Who is calling: a bearer access token of this server, or the console's session (with a CSRF token)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request, session
from flask_wtf.csrf import CSRFError

from ..csrf import csrf
from ..errors import Forbidden, InvalidToken, Unauthenticated
from ..services.common import Actor
from ..services.management import Caller, resolve_session_caller, resolve_token_caller
from ..services.sessions import COOKIE_KEY, load_session

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRFToken"


@dataclass(frozen=True)
class CallContext:
    """The caller of one request and the actor its changes are recorded under (with the client IP)."""

    caller: Caller
    actor: Actor

    @property
    def org_id(self) -> str:
        return self.caller.org_id


class CsrfFailed(Forbidden):
    """A cookie-authenticated change without the CSRF header's token."""


def _bearer_token(header: str) -> str | None:
    """The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), or None for another scheme."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _check_csrf() -> None:
    """A session rides along with every browser request, so a state change must also prove it comes
    from a page of this server: the Flask-WTF token, in the X-CSRFToken header."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    try:
        csrf.protect()
    except CSRFError as exc:
        raise CsrfFailed(f"Send the console's CSRF token in the {CSRF_HEADER} header. ({exc.description})") from None


def authenticate() -> CallContext:
    header = request.headers.get("Authorization")
    if header is not None:
        token = _bearer_token(header)
        if token is None:
            raise Unauthenticated("Use an access token of this server: Authorization: Bearer <token>.")
        if not token:
            raise InvalidToken("The access token is invalid, expired or revoked.")
        caller = resolve_token_caller(token)
    elif session.get(COOKIE_KEY) is not None:
        # The cookie holds only the console session's id; the session itself is on the server and may
        # have ended (signed out, everywhere too; expired; idle; password changed; account disabled).
        live = load_session(session.get(COOKIE_KEY))
        if live is None:
            raise Unauthenticated("This console session has ended: sign in again.")
        caller = resolve_session_caller(live.account_id, live.org_id)
        if request.method in UNSAFE_METHODS:
            _check_csrf()
    else:
        raise Unauthenticated(
            "Authentication required: send Authorization: Bearer <access token> with the manage scope."
        )
    return CallContext(caller, Actor(caller.account_id, request.remote_addr))
