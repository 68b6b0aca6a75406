"""Console sessions, kept on the server: the one place that opens, checks, touches and ends them.

The browser's cookie carries a random session id (256 bits); the database keeps only its SHA-256
hash (the id is random, so a fast hash is enough: nothing can be guessed from it). A session is
refused when its row is gone (signed out, signed out everywhere, password changed, account
disabled), after its absolute lifetime, after its idle timeout, or once its account is no longer an
active admin of its organization. The console and the management API's cookie path both ask here.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update

from .. import clock
from ..extensions import db
from ..models import Account, ConsoleSession
from .audit import record_event
from .common import Actor, affected_rows, current_settings, is_identifier, transactional

# The key of Flask's signed cookie under which the console keeps the session id, and nothing else
# that identifies the admin (the management API reads the same key).
COOKIE_KEY = "console_session"
SESSION_ID_BYTES = 32
SESSION_ID_MAX = 64  # secrets.token_urlsafe(32) is 43 characters; anything longer is no session id
# last_seen_at is written at most once a minute per session, not on every request.
TOUCH_INTERVAL = 60
USER_AGENT_MAX = 200


@dataclass(frozen=True)
class NewSession:
    """A session just opened: `session_id` goes into the cookie and is never stored or logged."""

    session_id: str
    session: ConsoleSession


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def idle_seconds() -> int:
    return current_settings().console_session_idle_minutes * 60


def lifetime_seconds() -> int:
    return current_settings().console_session_max_hours * 3600


def _clean_user_agent(user_agent: object) -> str | None:
    """What the session list shows of the browser: printable text, cut to the column's length."""
    if not isinstance(user_agent, str):
        return None
    text = "".join(ch for ch in user_agent if ch.isprintable()).strip()
    return text[:USER_AGENT_MAX] or None


def _clean_address(address: object) -> str | None:
    return address[:64] if isinstance(address, str) and address.isprintable() and address else None


def create_session(account: Account, *, user_agent: object = None, ip_address: object = None) -> NewSession:
    """Add a new session of `account` to the caller's transaction."""
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    now = clock.now()
    row = ConsoleSession(
        session_hash=hash_session_id(session_id), account_id=account.account_id, org_id=account.org_id,
        created_at=now, last_seen_at=now, expires_at=now + lifetime_seconds(),
        user_agent=_clean_user_agent(user_agent), ip_address=_clean_address(ip_address),
    )
    db.session.add(row)
    return NewSession(session_id, row)


@transactional
def start_session(account: Account, *, user_agent: object = None, ip_address: object = None,
                  replaces: object = None) -> NewSession:
    """Sign an admin in: a new session, and the sign-in in the audit log of the account's organization.
    `replaces`: the session id the browser held until now, if any; that session ends (one browser, one
    session)."""
    if is_identifier(replaces, SESSION_ID_MAX):
        db.session.execute(delete(ConsoleSession).where(ConsoleSession.session_hash == hash_session_id(replaces))
                           .execution_options(synchronize_session="fetch"))
    new = create_session(account, user_agent=user_agent, ip_address=ip_address)
    record_event(Actor(account.account_id, _clean_address(ip_address)), account.org_id, "console.signed_in",
                 "account", account.account_id)
    return new


def _refusal(row: ConsoleSession, now: int) -> str | None:
    """Why a stored session no longer signs anyone in, or None when it still does."""
    from .accounts import active_admin  # accounts ends sessions too: imported here, not at the top

    if now >= row.expires_at:
        return "expired"
    if now - row.last_seen_at >= idle_seconds():
        return "idle"
    if active_admin(row.account_id, row.org_id) is None:
        return "not an active admin"
    return None


@dataclass(frozen=True)
class LiveSession:
    """A session that was found live, as it was then (a copy: the row may be deleted meanwhile)."""

    session_hash: str
    account_id: str
    org_id: str
    created_at: int
    last_seen_at: int
    expires_at: int


def load_session(session_id: object) -> LiveSession | None:
    """The live session this id names, or None. A session found dead (expired, idle too long, its
    account no longer an active admin) is deleted at once. A live one is touched (at most once a
    minute)."""
    if not is_identifier(session_id, SESSION_ID_MAX):
        return None
    row = db.session.get(ConsoleSession, hash_session_id(session_id))
    if row is None:
        return None
    now = clock.now()
    if _refusal(row, now) is not None:
        db.session.execute(delete(ConsoleSession).where(ConsoleSession.session_hash == row.session_hash)
                           .execution_options(synchronize_session="fetch"))
        db.session.commit()
        return None
    live = LiveSession(row.session_hash, row.account_id, row.org_id, row.created_at, row.last_seen_at, row.expires_at)
    return touch_session(live, now)


def touch_session(live: LiveSession, now: int | None = None) -> LiveSession:
    """Record activity for the idle timeout, at most once every TOUCH_INTERVAL seconds."""
    now = clock.now() if now is None else now
    if now - live.last_seen_at < TOUCH_INTERVAL:
        return live
    # A plain UPDATE: a session deleted meanwhile (signed out elsewhere) simply matches no row.
    db.session.execute(update(ConsoleSession).where(ConsoleSession.session_hash == live.session_hash,
                                                    ConsoleSession.last_seen_at < now)
                       .values(last_seen_at=now).execution_options(synchronize_session=False))
    db.session.commit()
    return LiveSession(live.session_hash, live.account_id, live.org_id, live.created_at, now, live.expires_at)


@transactional
def end_session(session_id: object, ip_address: object = None) -> bool:
    """Sign out: delete the session, so its id is useless on every browser that holds a copy."""
    if not is_identifier(session_id, SESSION_ID_MAX):
        return False
    row = db.session.get(ConsoleSession, hash_session_id(session_id))
    if row is None:
        return False
    account_id, org_id = row.account_id, row.org_id
    deleted = affected_rows(delete(ConsoleSession).where(ConsoleSession.session_hash == row.session_hash)
                                 .execution_options(synchronize_session="fetch"))
    if not deleted:  # signed out elsewhere meanwhile
        return False
    record_event(Actor(account_id, _clean_address(ip_address)), org_id, "console.signed_out", "account", account_id)
    return True


def end_all_for_account(account_id: str, *, keep_hash: str | None = None) -> int:
    """Delete every session of an account (but the one whose hash is `keep_hash`), in the caller's
    transaction: how many ended. Called when the password changes or the account is disabled."""
    query = delete(ConsoleSession).where(ConsoleSession.account_id == account_id)
    if keep_hash is not None:
        query = query.where(ConsoleSession.session_hash != keep_hash)
    return affected_rows(query.execution_options(synchronize_session="fetch"))


@transactional
def end_everywhere(live: LiveSession, ip_address: object = None) -> int:
    """Sign out everywhere: every session of the session's account ends, this one too. How many ended."""
    account_id, org_id = live.account_id, live.org_id
    ended = end_all_for_account(account_id)
    record_event(Actor(account_id, _clean_address(ip_address)), org_id, "console.signed_out_everywhere",
                 "account", account_id, sessions_ended=ended)
    return ended


def list_sessions(account_id: str) -> list[ConsoleSession]:
    """The account's live sessions, the most recently used first."""
    now = clock.now()
    rows = db.session.scalars(select(ConsoleSession).where(
        ConsoleSession.account_id == account_id, ConsoleSession.expires_at > now,
        ConsoleSession.last_seen_at > now - idle_seconds(),
    ).order_by(ConsoleSession.last_seen_at.desc(), ConsoleSession.created_at.desc()))
    return list(rows)


@transactional
def purge_expired_sessions() -> int:
    """Delete the sessions past their absolute lifetime or their idle timeout: how many went."""
    now = clock.now()
    return affected_rows(delete(ConsoleSession).where(or_(
        ConsoleSession.expires_at <= now, ConsoleSession.last_seen_at <= now - idle_seconds(),
    )).execution_options(synchronize_session=False))
