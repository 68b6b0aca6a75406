"""Console sign-in: password check, throttling of failures, the session cookie, and who is signed in.

The session itself lives in the database (services/sessions.py); Flask's signed cookie carries only
its random id, under one key, beside Flask-WTF's CSRF token and flashed messages."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, session

from ..models import Account
from ..ratelimit import (
    SIGN_IN_FAILURES_PER_ADDRESS,
    SIGN_IN_FAILURES_PER_EMAIL_AND_ADDRESS,
    RateLimits,
)
from ..services import sessions
from ..services.accounts import (
    active_admin,
    authenticate_user,
    change_own_password,
    record_password_change_refused,
    record_sign_in,
)
from ..services.app_services import app_services
from ..services.common import Actor
from .feedback import status_of

# The console's limits, defined with the server's other rate policies (ratelimit.RatePolicies).
FAILURES_PER_EMAIL_AND_ADDRESS = SIGN_IN_FAILURES_PER_EMAIL_AND_ADDRESS
FAILURES_PER_ADDRESS = SIGN_IN_FAILURES_PER_ADDRESS
SESSION_KEY = sessions.COOKIE_KEY  # the management API reads the same key


@dataclass(frozen=True)
class SignInResult:
    account: Account | None = None
    message: str = ""
    status: int = 200
    retry_after: int = 0


def _limiter() -> RateLimits:
    return app_services().rate_limiter


def _pair(email: str, address: str) -> str:
    """The subject of the per-email-and-address policy."""
    return address + ":" + email.strip().lower()[:254]


def sign_in(email: object, password: object, address: str | None) -> SignInResult:
    """Check the credentials of an organization admin, counting failures per email and per address.
    Once either count is used up, every attempt is refused until the window ends."""
    email = email if isinstance(email, str) else ""
    address = address or "unknown"
    pair = _pair(email, address)
    limits = _limiter()
    policies = limits.policies
    for policy, subject in ((policies.sign_in_failures_per_address, address),
                            (policies.sign_in_failures_per_email_and_address, pair)):
        decision = limits.used_up(policy, subject)
        if not decision.allowed:
            return SignInResult(
                message=f"Too many failed sign-in attempts. Wait {decision.retry_after} seconds and try again.",
                status=429, retry_after=decision.retry_after,
            )
    account = authenticate_user(email, password)
    if account is None:
        limits.hit(policies.sign_in_failures_per_address, address)
        limits.hit(policies.sign_in_failures_per_email_and_address, pair)
        record_sign_in(email, "sign_in_failed", address)
        return SignInResult(message="The email address or password is not correct.", status=400)
    if active_admin(account.account_id, account.org_id) is None:
        return SignInResult(
            message="This account is not an organization admin, so it cannot use the console. "
            "Ask an admin of your organization.",
            status=403,
        )
    return SignInResult(account=account)


def _hold_in_cookie(session_id: str) -> None:
    session.clear()  # a fresh cookie on every sign-in: nothing chosen before it survives (fixation)
    session[SESSION_KEY] = session_id
    session.permanent = True


def start_session(account: Account, address: str | None = None, user_agent: str | None = None) -> None:
    """Open a server-side session (audited) and give this browser its id."""
    new = sessions.start_session(account, user_agent=user_agent, ip_address=address, replaces=session.get(SESSION_KEY))
    _hold_in_cookie(new.session_id)


def end_session(address: str | None = None) -> None:
    """Sign out: the session's row is deleted, so every copy of this cookie is useless."""
    sessions.end_session(session.get(SESSION_KEY), address)
    session.clear()


def end_everywhere(address: str | None = None) -> int:
    """Sign out everywhere: every session of the signed-in admin ends, this one too."""
    ended = sessions.end_everywhere(g.console_session, address)
    session.clear()
    return ended


def current_session() -> sessions.LiveSession | None:
    return g.get("console_session")


def signed_in_admin() -> Account | None:
    """The admin of this browser's session, re-checked on every request; None when there is none. A
    session that ended (signed out elsewhere, expired, idle, account disabled or demoted) is forgotten
    here too, and `g.session_ended` says so."""
    g.console_session = None
    g.session_ended = False
    if SESSION_KEY not in session:
        return None
    live = sessions.load_session(session.get(SESSION_KEY))
    account = active_admin(live.account_id, live.org_id) if live is not None else None
    if account is None:
        session.clear()
        g.session_ended = True
        return None
    g.console_session = live
    return account


@dataclass(frozen=True)
class PasswordChangeResult:
    errors: dict
    status: int = 200
    retry_after: int = 0


def change_password(admin: Account, current: object, new: object, again: object, address: str | None,
                    user_agent: str | None) -> PasswordChangeResult:
    """Change the signed-in admin's own password. On success every session of the admin ends and this
    browser gets a new one; wrong current passwords are counted per account and audited."""
    from ..errors import DomainError

    limits = _limiter()
    policy = limits.policies.password_change_failures_per_account
    decision = limits.used_up(policy, admin.account_id)
    if not decision.allowed:
        return PasswordChangeResult(
            {"form": f"Too many wrong current passwords. Wait {decision.retry_after} seconds and try again."},
            429, decision.retry_after)
    actor = Actor(admin.account_id, address)
    try:
        new_session = change_own_password(admin.account_id, admin.org_id, current, new, again, actor=actor,
                                          user_agent=user_agent)
    except DomainError as exc:
        if exc.field == "current_password":
            limits.hit(policy, admin.account_id)
            record_password_change_refused(admin.account_id, admin.org_id, actor)
        return PasswordChangeResult({exc.field or "form": exc.message}, status_of(exc))
    _hold_in_cookie(new_session.session_id)
    return PasswordChangeResult({})
