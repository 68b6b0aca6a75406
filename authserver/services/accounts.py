"""Accounts: the subjects of access tokens. Service accounts cannot log in; users can."""
from __future__ import annotations

import re
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import ACCOUNT_KINDS, Account, Organization
from .audit import record_event
from .common import CLI_ACTOR, Actor, clean_name, is_identifier, new_id, transactional
from .organizations import get_organization
from .sessions import NewSession, create_session, end_all_for_account

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}$")
EMAIL_MAX = 254
PASSWORD_MIN = 12
EMAIL_TAKEN = "An account with this email address already exists in this organization."
PASSWORD_MAX = 1024
_password_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


@cache
def _dummy_hash() -> str:
    """What an unknown email is checked against, so it costs one verification like a known one. Made at
    the first sign-in, not at import: every command and worker start would pay for a hash otherwise."""
    return _password_hasher.hash("not a real password, only a timing equaliser")


def _clean_email(email: object) -> str:
    # Control characters (NUL among them) fit the pattern's [^@\s] but no mailbox, nor PostgreSQL text.
    if not isinstance(email, str) or not EMAIL.match(email.strip()) or not email.strip().isprintable():
        raise InvalidInput("A valid email address is required.", field="email")
    if len(email.strip()) > EMAIL_MAX:  # RFC 5321 §4.5.3.1.3 path limit, and the column's
        raise InvalidInput(f"An email address has at most {EMAIL_MAX} characters.", field="email")
    return email.strip().lower()


def _check_password(password: object, field: str = "password") -> str:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise InvalidInput(f"The password must be at least {PASSWORD_MIN} characters.", field=field)
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"The password must be at most {PASSWORD_MAX} characters.", field=field)
    return password


def _password_matches(account: Account, password: object) -> bool:
    if not account.password_hash or not isinstance(password, str) or len(password) > PASSWORD_MAX:
        return False
    try:
        return _password_hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@transactional
def create_account(
    org_id: str,
    name: str,
    kind: str,
    *,
    email: str | None = None,
    password: str | None = None,
    is_admin: bool = False,
    actor: Actor = CLI_ACTOR,
) -> Account:
    get_organization(org_id)
    name = clean_name(name, "Account name")
    if kind not in ACCOUNT_KINDS:
        raise InvalidInput("Account kind must be 'service' or 'user'.", field="kind")
    password_hash = None
    if kind == "service":
        if email or password or is_admin:
            raise InvalidInput(
                "A service account has no email, password or admin role: it cannot log in.", field="kind"
            )
    else:
        email = _clean_email(email)
        # Unique within the organization only: an address another organization uses is never refused or told.
        if db.session.scalar(select(func.count()).select_from(Account).where(Account.org_id == org_id,
                                                                            Account.email == email)):
            raise Conflict(EMAIL_TAKEN, field="email")
        if password is not None:
            password_hash = _password_hasher.hash(_check_password(password))
    account = Account(
        account_id=new_id("acc_"),
        org_id=org_id,
        name=name,
        kind=kind,
        email=email if kind == "user" else None,
        password_hash=password_hash,
        is_admin=bool(is_admin),
        created_at=clock.now(),
    )
    db.session.add(account)
    try:
        db.session.flush()
    except IntegrityError:  # the same email registered in this organization at the same instant
        db.session.rollback()
        raise Conflict(EMAIL_TAKEN, field="email") from None
    record_event(
        actor, org_id, "account.created", "account", account.account_id, kind=kind, name=name, admin=bool(is_admin)
    )
    return account


def get_account(account_id: str, org_id: str | None = None) -> Account:
    account = db.session.get(Account, account_id) if is_identifier(account_id) else None
    if account is None or (org_id is not None and account.org_id != org_id):
        raise NotFound("Account not found.")
    return account


def list_accounts(org_id: str, kind: str | None = None) -> list[Account]:
    query = select(Account).where(Account.org_id == org_id)
    if kind is not None:
        query = query.where(Account.kind == kind)
    return list(db.session.scalars(query.order_by(Account.created_at, Account.account_id)))


def _active_admin_count(org_id: str) -> int:
    # The organization's row is locked first (PostgreSQL), so two admins disabling each other at the
    # same moment are counted one after the other and never leave the organization without an admin.
    db.session.execute(select(Organization.org_id).where(Organization.org_id == org_id).with_for_update())
    return db.session.scalar(select(func.count()).select_from(Account).where(
        Account.org_id == org_id, Account.kind == "user", Account.is_admin, Account.disabled_at.is_(None))) or 0


def _refuse_the_last_admin(account: Account) -> None:
    if account.kind == "user" and account.is_admin and _active_admin_count(account.org_id) <= 1:
        raise Conflict("This is the organization's last active administrator: make another admin first.")


def _disable(account: Account, actor: Actor) -> Account:
    if account.disabled_at is None:
        _refuse_the_last_admin(account)
        account.disabled_at = clock.now()
        details = {"sessions_ended": end_all_for_account(account.account_id)} if account.kind == "user" else {}
        record_event(actor, account.org_id, "account.disabled", "account", account.account_id, **details)
    return account


@transactional
def disable_account(account_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> Account:
    """Disable an account: it gets no new tokens, its live tokens introspect as inactive and its console
    sessions end. The last active admin of an organization is not disabled: nobody could manage it any more."""
    return _disable(get_account(account_id, org_id), actor)


def get_admin(account_id: str, org_id: str) -> Account:
    """An administrator (active or disabled) of the organization; NotFound for any other account."""
    account = get_account(account_id, org_id)
    if account.kind != "user" or not account.is_admin:
        raise NotFound("Administrator not found.")
    return account


def list_admins(org_id: str) -> list[Account]:
    return [a for a in list_accounts(org_id, kind="user") if a.is_admin]


@transactional
def disable_admin(account_id: str, org_id: str, actor: Actor) -> Account:
    """An admin disables another admin of the same organization (never themselves, never the last
    active one): the other admin is signed out everywhere and cannot sign in until enabled again."""
    account = get_admin(account_id, org_id)
    if account.account_id == actor.actor_id:
        if account.disabled_at is None:
            _refuse_the_last_admin(account)  # the reason that stays true whoever asks
        raise Conflict("You cannot disable your own account: another admin of the organization can.")
    return _disable(account, actor)


@transactional
def enable_account(account_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> Account:
    """Enable a disabled account again: it may get new tokens. Tokens issued before it was disabled
    stay dead (they are revoked now), so re-enabling never revives a token of a compromised account."""
    from ..models import AccessToken

    account = get_account(account_id, org_id)
    if account.disabled_at is not None:
        db.session.execute(update(AccessToken).where(AccessToken.account_id == account.account_id,
                                                     AccessToken.revoked_at.is_(None))
                           .values(revoked_at=clock.now()).execution_options(synchronize_session=False))
        account.disabled_at = None
        record_event(actor, account.org_id, "account.enabled", "account", account.account_id)
    return account


@transactional
def set_password(account_id: str, password: object, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> Account:
    """Set a user's password (the operator's reset). Every console session of the account ends: whoever
    knew the old password, or holds a copy of a session cookie, is signed out."""
    account = get_account(account_id, org_id)
    if account.kind != "user":
        raise InvalidInput("A service account has no password: it cannot log in.", field="password")
    account.password_hash = _password_hasher.hash(_check_password(password))
    ended = end_all_for_account(account.account_id)
    record_event(actor, account.org_id, "account.password_set", "account", account.account_id, sessions_ended=ended)
    return account


@transactional
def change_own_password(account_id: str, org_id: str, current_password: object, new_password: object,
                        new_password_again: object, *, actor: Actor, user_agent: object = None) -> NewSession:
    """An admin changes their own password. Every session of the account ends, the current one too, and
    a new session replaces the current one (so a copy of its cookie is useless as well): the new session
    is returned. Nothing changes when the current password is wrong or the new one is refused."""
    account = get_account(account_id, org_id)
    if account.kind != "user" or not account.password_hash:
        raise InvalidInput("This account has no password to change.", field="current_password")
    if not _password_matches(account, current_password):
        raise InvalidInput("The current password is not correct.", field="current_password")
    new_password = _check_password(new_password, field="new_password")
    if new_password_again != new_password:
        raise InvalidInput("The two new passwords are not the same.", field="new_password_again")
    if new_password == current_password:
        raise InvalidInput("The new password must differ from the current one.", field="new_password")
    account.password_hash = _password_hasher.hash(new_password)
    ended = end_all_for_account(account.account_id)
    new_session = create_session(account, user_agent=user_agent, ip_address=actor.ip_address)
    record_event(actor, account.org_id, "account.password_changed", "account", account.account_id,
                 other_sessions_ended=max(ended - 1, 0))
    return new_session


def _accounts_with_email(email: object) -> list[Account]:
    """Every organization's account with this email (each organization has at most one), oldest first."""
    if not is_identifier(email, EMAIL_MAX):
        return []
    return list(db.session.scalars(select(Account).where(Account.email == email.strip().lower())
                                   .order_by(Account.created_at, Account.account_id)))


def authenticate_user(email: object, password: object) -> Account | None:
    """The user with this email and password, or None. Emails are unique per organization only, so every
    organization's account with the email is checked, each at the cost of one argon2id verification
    whatever its outcome (a miss on an unknown email costs one too); the organization is chosen after:
    an active admin first, then the oldest account."""
    if not isinstance(password, str) or len(password) > PASSWORD_MAX:
        return None
    dummy = _dummy_hash()  # made before the lookup, so its one-time cost says nothing about the email
    candidates = [a for a in _accounts_with_email(email) if a.password_hash]
    matches = []
    tries: list[Account | None] = list(candidates) or [None]
    for account in tries:
        stored = account.password_hash if account is not None and account.password_hash else dummy
        try:
            _password_hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            continue
        if account is not None and account.kind == "user" and account.disabled_at is None:
            matches.append(account)
    return min(matches, key=lambda a: not a.is_admin, default=None)  # stable: the oldest admin, else the oldest


@transactional
def record_password_change_refused(account_id: str, org_id: str, actor: Actor) -> None:
    """Audit an attempt to change one's own password with a wrong current password (nothing else is kept)."""
    record_event(actor, org_id, "account.password_change_refused", "account", account_id)


@transactional
def record_sign_in(email: object, outcome: str, ip_address: str | None) -> None:
    """Audit a console sign-in attempt (the console records `sign_in_failed` here) in each organization
    that has an account with the email, each learning only of its own account. An email that names no
    account is recorded nowhere: no organization may learn of it. Sign-ins that open a session, sign-outs
    and sign-outs everywhere are audited by services/sessions.py, in the transaction that opens or ends
    the session."""
    for account in _accounts_with_email(email):
        record_event(Actor(account.account_id if outcome != "sign_in_failed" else "anonymous", ip_address),
                     account.org_id, f"console.{outcome}", "account", account.account_id)


def active_admin(account_id: object, org_id: object) -> Account | None:
    """The account that may manage `org_id` (console session or management token), or None:
    it must still exist, belong to that organization, be a user, an admin, and not be disabled."""
    if not is_identifier(account_id) or not is_identifier(org_id):
        return None
    account = db.session.get(Account, account_id)
    if account is None or account.org_id != org_id or account.kind != "user" or not account.is_admin:
        return None
    if account.disabled_at is not None:
        return None
    return account
