"""Console sign-in: password check, throttling of failures, the session, and who is signed in."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, session

from ..models import Account
from ..services.accounts import active_admin, authenticate_user, record_sign_in

# Failed sign-ins allowed per minute (the limiter's window); the next attempt is refused. Counted per
# email *and* address together, and per address: nobody can lock a rightful admin out by guessing at
# their email from elsewhere (a guesser spread over many addresses meets argon2id and 12+ characters).
FAILURES_PER_EMAIL_AND_ADDRESS = 5
FAILURES_PER_ADDRESS = 20
SESSION_KEYS = ("account_id", "org_id")  # the management API accepts these keys too


@dataclass(frozen=True)
class SignInResult:
    account: Account | None = None
    message: str = ""
    status: int = 200
    retry_after: int = 0


def _limiter():
    return current_app.extensions["authserver.oauth"].runtime.rate_limiter


def _keys(email: str, address: str) -> tuple[str, str]:
    return ("console-signin:pair:" + address + ":" + email.strip().lower()[:254],
            "console-signin:addr:" + address)


def sign_in(email: object, password: object, address: str | None) -> SignInResult:
    """Check the credentials of an organization admin, counting failures per email and per address.
    Once either count is used up, every attempt is refused until the window ends."""
    email = email if isinstance(email, str) else ""
    address = address or "unknown"
    pair_key, address_key = _keys(email, address)
    limiter = _limiter()
    for key, limit in ((address_key, FAILURES_PER_ADDRESS), (pair_key, FAILURES_PER_EMAIL_AND_ADDRESS)):
        decision = limiter.exceeded(key, limit - 1)
        if not decision.allowed:
            return SignInResult(
                message=f"Too many failed sign-in attempts. Wait {decision.retry_after} seconds and try again.",
                status=429, retry_after=decision.retry_after,
            )
    account = authenticate_user(email, password)
    if account is None:
        limiter.hit(address_key, FAILURES_PER_ADDRESS)
        limiter.hit(pair_key, FAILURES_PER_EMAIL_AND_ADDRESS)
        record_sign_in(email, "sign_in_failed", address)
        return SignInResult(message="The email address or password is not correct.", status=400)
    if active_admin(account.account_id, account.org_id) is None:
        return SignInResult(
            message="This account is not an organization admin, so it cannot use the console. Ask an admin of your organization.",
            status=403,
        )
    return SignInResult(account=account)


def start_session(account: Account, address: str | None = None) -> None:
    record_sign_in(account.email, "signed_in", address)
    session.clear()  # a fresh session on every sign-in: nothing chosen before it survives (fixation)
    session["account_id"] = account.account_id
    session["org_id"] = account.org_id
    session.permanent = True


def end_session(address: str | None = None) -> None:
    account = signed_in_admin()
    if account is not None:
        record_sign_in(account.email, "signed_out", address)
    session.clear()


def signed_in_admin() -> Account | None:
    """The admin of the current session, re-checked on every request; None ends the session."""
    if not session.get("account_id"):
        return None
    account = active_admin(session.get("account_id"), session.get("org_id"))
    if account is None:
        session.clear()
    return account
