"""Client secrets: generated here, shown once, stored as a keyed hash, deletable one by one, with an
optional expiry, and disabled when a leak report names them."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import ColumnElement, func, select, update

from .. import clock, token_store
from ..config import SECRET_TTL_MAX_DAYS
from ..crypto.client_secrets import (
    FORMAT_MALFORMED,
    candidate_hashes,
    generate_client_secret,
    generate_secret_id,
    hash_client_secret,
    secret_format,
    secret_hash_matches,
    secret_hint,
)
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..last_used import LastUsedRecorder
from ..models import Client, ClientSecret
from .app_services import app_services
from .audit import record_event
from .clients import get_client
from .common import CLI_ACTOR, Actor, affected_rows, current_settings, is_identifier, transactional

MAX_SECRETS_PER_CLIENT = 20
DAY = 86400
EXPIRY_WARNING_DAYS = 14  # listings warn about a secret that expires sooner than this
MAX_LEAK_REPORT_SECRETS = 100  # entries of one leak report
LEAK_REPORTER = "leak-report"  # the audit log's actor of a leak report (it authenticates nobody)
LABEL_MAX = 100
EXPIRING_EVENT = "secret.expiring"
EXPIRY_NOTIFIER = Actor("expiry-notice")  # the audit log's actor of secret.expiring (the background purger)

# What a secret's row says about it now (listings in every door).
STATE_ACTIVE = "active"
STATE_EXPIRING = "expiring"  # still authenticates, expires within EXPIRY_WARNING_DAYS
STATE_EXPIRED = "expired"
STATE_LEAKED = "leaked"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewClientSecret:
    """The one moment a secret exists in clear: returned to the caller, never stored."""

    secret_id: str
    client_secret: str = field(repr=False)  # never in a log line or a failed test's report
    created_at: int
    expires_at: int | None
    hint: str  # the stored hint: the last characters, never enough to use the secret
    label: str | None = None


def clean_label(value: object) -> str | None:
    """A secret's optional label: up to LABEL_MAX printable characters; empty means none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("The label must be text.", field="label")
    value = value.strip()
    if not value:
        return None
    if len(value) > LABEL_MAX:
        raise InvalidInput(f"The label must be at most {LABEL_MAX} characters (it has {len(value)}).", field="label")
    if not value.isprintable():
        raise InvalidInput("The label must be printable text on one line, without control characters.", field="label")
    return value


HINT_UNKNOWN = "hint unknown"  # a secret made before hints were kept


def hint_text(hint: str | None) -> str:
    """A secret's hint for people: its last characters after an ellipsis, e.g. "…AbCd"."""
    return f"…{hint}" if hint else HINT_UNKNOWN


def _pepper() -> bytes:
    return current_settings().secret_pepper


EXPIRY_TIME_FORMAT = ("an ISO 8601 date-time with a time zone (e.g. 2030-01-31T12:00:00Z) "
                      "or a date (e.g. 2030-01-31, midnight UTC)")


def parse_expiry_time(value: object) -> int:
    """An expiry time given as text: an ISO 8601 date-time with a time zone, or a date alone (midnight
    UTC). A date-time without a zone is refused: it would mean a different instant on each host."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"The expiry time must be {EXPIRY_TIME_FORMAT}.", field="expires_at")
    if isinstance(value, int):
        return value
    text = value.strip()
    try:
        try:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        except ValueError:
            moment = datetime.fromisoformat(text)
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidInput("The expiry time needs a time zone (Z for UTC, or an offset such as +02:00).",
                               field="expires_at")
        return int(moment.timestamp())
    except (ValueError, OverflowError, TypeError):
        raise InvalidInput(f"The expiry time must be {EXPIRY_TIME_FORMAT}.", field="expires_at") from None


def _expiry_days(value: object) -> int:
    message = f"The expiry in days must be a whole number from 1 to {SECRET_TTL_MAX_DAYS}."
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 12:
            raise InvalidInput(message, field="expires_in_days")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SECRET_TTL_MAX_DAYS:
        raise InvalidInput(message, field="expires_in_days")
    return value


def resolve_expiry(expires_at: object = None, expires_in_days: object = None, *, now: int) -> int | None:
    """When a new secret expires: the time given, or the days given, or the server's default
    (secret_default_ttl_days; 0 means never). Empty text counts as not given."""
    if isinstance(expires_at, str) and not expires_at.strip():
        expires_at = None
    if isinstance(expires_in_days, str) and not expires_in_days.strip():
        expires_in_days = None
    if expires_at is not None and expires_in_days is not None:
        raise InvalidInput("Give either an expiry time or a number of days until expiry, not both.", field="expires_at")
    if expires_in_days is not None:
        return now + _expiry_days(expires_in_days) * DAY
    if expires_at is not None:
        at = parse_expiry_time(expires_at)
        if at <= now:
            raise InvalidInput("The expiry time has already passed: give a time in the future.", field="expires_at")
        if at > now + SECRET_TTL_MAX_DAYS * DAY:
            raise InvalidInput(f"The expiry time must be at most {SECRET_TTL_MAX_DAYS} days ahead.", field="expires_at")
        return at
    default_days = current_settings().secret_default_ttl_days
    return now + default_days * DAY if default_days else None


@transactional
def add_secret(client_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR, *,
               expires_at: int | str | None = None, expires_in_days: int | str | None = None,
               label: str | None = None) -> NewClientSecret:
    """A new secret, valid until `expires_at` (a time, or ISO 8601 text), for `expires_in_days`, or
    for the server's default lifetime when neither is given, with an optional label to tell it apart.
    Nothing is stored when a value is refused."""
    client = get_client(client_id, org_id)
    now = clock.now()
    label = clean_label(label)
    expiry = resolve_expiry(expires_at, expires_in_days, now=now)
    count = len(list_secrets(client.client_id))
    if count >= MAX_SECRETS_PER_CLIENT:
        raise Conflict(f"A client may have at most {MAX_SECRETS_PER_CLIENT} secrets; delete an unused one first.")
    plaintext = generate_client_secret()
    hint = secret_hint(plaintext)
    row = ClientSecret(
        secret_id=generate_secret_id(),
        client_id=client.client_id,
        secret_hash=hash_client_secret(plaintext, _pepper()),
        created_at=now,
        last_used_at=None,
        expires_at=expiry,
        label=label,
        hint=hint,
    )
    db.session.add(row)
    record_event(actor, client.org_id, "secret.created", "client_secret", row.secret_id, client_id=client.client_id,
                 expires_at=clock.isoformat(expiry), label=label)
    return NewClientSecret(secret_id=row.secret_id, client_secret=plaintext, created_at=row.created_at,
                           expires_at=expiry, hint=hint, label=label)


def secret_state(row: ClientSecret, now: int | None = None) -> str:
    """STATE_LEAKED, STATE_EXPIRED, STATE_EXPIRING (within EXPIRY_WARNING_DAYS) or STATE_ACTIVE."""
    now = clock.now() if now is None else now
    if row.leaked_at is not None:
        return STATE_LEAKED
    if row.expires_at is not None:
        if row.expires_at <= now:
            return STATE_EXPIRED
        if row.expires_at - now < EXPIRY_WARNING_DAYS * DAY:
            return STATE_EXPIRING
    return STATE_ACTIVE


def _expiring(now: int) -> tuple[ColumnElement[bool], ...]:
    """The SQL form of STATE_EXPIRING: not leaked, not yet expired, expiring within EXPIRY_WARNING_DAYS."""
    return (ClientSecret.leaked_at.is_(None), ClientSecret.expires_at > now,
            ClientSecret.expires_at < now + EXPIRY_WARNING_DAYS * DAY)


def count_expiring_secrets(now: int | None = None) -> int:
    """How many secrets of the whole server are in STATE_EXPIRING (the metrics gauge)."""
    now = clock.now() if now is None else now
    return db.session.scalar(select(func.count()).select_from(ClientSecret).where(*_expiring(now))) or 0


@transactional
def note_expiring_secrets(now: int | None = None) -> list[str]:
    """Write one `secret.expiring` audit event for each secret that has entered the warning window,
    and mark the secret so it is written once: the mark and the event commit together, and only the
    purger whose UPDATE marks the row writes the event (several purgers, restarts). Returns the ids."""
    now = clock.now() if now is None else now
    rows = db.session.execute(
        select(ClientSecret.secret_id, ClientSecret.client_id, ClientSecret.expires_at, ClientSecret.label,
               Client.org_id)
        .join(Client, Client.client_id == ClientSecret.client_id)
        .where(ClientSecret.expiry_noticed_at.is_(None), *_expiring(now))
        .order_by(ClientSecret.expires_at, ClientSecret.secret_id)
    ).all()
    noticed = []
    for secret_id, client_id, expires_at, label, org in rows:  # _expiring: expires_at is set
        marked = affected_rows(
            update(ClientSecret)
            .where(ClientSecret.secret_id == secret_id, ClientSecret.expiry_noticed_at.is_(None))
            .values(expiry_noticed_at=now)
            .execution_options(synchronize_session=False)
        )
        if marked:
            record_event(EXPIRY_NOTIFIER, org, EXPIRING_EVENT, "client_secret", secret_id, client_id=client_id,
                         expires_at=clock.isoformat(expires_at), days_left=-(-(int(expires_at or now) - now) // DAY),
                         label=label)
            noticed.append(secret_id)
    return noticed


def days_left(row: ClientSecret, now: int | None = None) -> int | None:
    """Whole days until the secret expires, rounded up (None: it never expires)."""
    if row.expires_at is None:
        return None
    now = clock.now() if now is None else now
    return max(0, -(-(row.expires_at - now) // DAY))


def _last_used() -> LastUsedRecorder:
    return app_services().last_used


def list_secrets(client_id: str, org_id: str | None = None) -> list[ClientSecret]:
    client = get_client(client_id, org_id)
    _last_used().flush()  # this worker's pending last-used times first (other workers write theirs within seconds)
    query = select(ClientSecret).where(ClientSecret.client_id == client.client_id)
    return list(db.session.scalars(query.order_by(ClientSecret.created_at, ClientSecret.secret_id)))


def get_secret(client_id: str, secret_id: str, org_id: str | None = None) -> ClientSecret:
    client = get_client(client_id, org_id)
    _last_used().flush()
    row = db.session.get(ClientSecret, secret_id) if is_identifier(secret_id) else None
    if row is None or row.client_id != client.client_id:
        raise NotFound("Client secret not found.")
    return row


@transactional
def delete_secret(client_id: str, secret_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    """The row goes at once, so the very next token request with it fails in every worker and host.
    Tokens it already obtained keep their own records and stay valid."""
    row = get_secret(client_id, secret_id, org_id)
    org = get_client(client_id, org_id).org_id
    db.session.delete(row)
    record_event(actor, org, "secret.deleted", "client_secret", secret_id, client_id=client_id)


@dataclass(frozen=True)
class AuthenticatedSecret:
    """What one indexed query learns about a client that presented a valid secret."""

    client_id: str
    org_id: str
    keys_version: int
    access_version: int
    secret_id: str


MAX_SECRET_LENGTH = 512

# Why a presented secret was refused although it may be (or may have been) a real one.
REFUSED_MALFORMED = "malformed"  # the checksummed format's prefix, but not its shape or checksum
REFUSED_EXPIRED = "expired"
REFUSED_LEAKED = "leaked"


@dataclass(frozen=True)
class SecretRefusal:
    """A secret that does not authenticate, with a reason the caller may be told. Expired and leaked
    come only from a secret of that very client that matched its stored hash: only whoever holds
    the exact secret learns it; anyone else gets None, like for any unknown secret."""

    reason: str
    at: int | None = None  # when it expired or was reported leaked


def authenticate_client_secret(client_id: str, secret: str) -> AuthenticatedSecret | SecretRefusal | None:
    """The client whose stored secret hash matches, a SecretRefusal, or None (unknown client or
    wrong secret). A string with the checksummed format's prefix that fails its shape or checksum
    is refused before any hashing or lookup. A deleted secret has no row, so it never
    authenticates again, in any worker or host. The stored hash itself is not a secret: it is
    hashed like any other input and cannot match. Expiry and leak marks come with the one indexed
    query, so they cost no statement of their own."""
    if not client_id or not secret or len(secret) > MAX_SECRET_LENGTH or len(client_id) > 64:
        return None
    if secret_format(secret) == FORMAT_MALFORMED:
        return SecretRefusal(REFUSED_MALFORMED)
    pepper = current_settings().secret_pepper
    for candidate in candidate_hashes(secret, pepper):
        match = token_store.secret_by_hash(candidate)
        if match is None:
            continue
        if match.client_id != client_id or not secret_hash_matches(secret, match.secret_hash, pepper):
            return None
        if match.leaked_at is not None:
            return SecretRefusal(REFUSED_LEAKED, match.leaked_at)
        now = clock.now()
        if match.expires_at is not None and now >= match.expires_at:
            return SecretRefusal(REFUSED_EXPIRED, match.expires_at)
        _last_used().record(match.secret_id, now, match.last_used_at)
        return AuthenticatedSecret(match.client_id, match.org_id, match.keys_version, match.access_version,
                                   match.secret_id)
    return None


def report_leaked_secrets(reported: Iterable[str], reporter: Actor) -> int:
    """Disable every secret a leak report names (a secret scanner found it in public): its row is
    marked leaked, so it never authenticates again and its owner sees why, and the owning
    organization's audit log records it. Strings that are no secret are skipped; those with the
    checksummed prefix but a wrong checksum without a lookup. Tokens the secret obtained stay
    valid, as when it is deleted. Returns how many were disabled: for the log, never for the
    reporter (the answer must not tell whether a string was a secret)."""
    disabled = _mark_leaked(list(reported), reporter)
    for secret_id, client_id in disabled:  # after the commit: the log tells only what is stored
        _log.warning("client secret %s of client %s was reported leaked and is disabled", secret_id, client_id)
    return len(disabled)


@transactional
def _mark_leaked(reported: list[str], reporter: Actor) -> list[tuple[str, str]]:
    pepper = _pepper()
    by_hash: dict[str, str] = {}
    for value in dict.fromkeys(reported):
        if not value or len(value) > MAX_SECRET_LENGTH or secret_format(value) == FORMAT_MALFORMED:
            continue
        for candidate in candidate_hashes(value, pepper):
            by_hash[candidate] = value
    if not by_hash:
        return []
    rows = db.session.execute(
        select(ClientSecret.secret_id, ClientSecret.client_id, ClientSecret.secret_hash, Client.org_id)
        .join(Client, Client.client_id == ClientSecret.client_id)
        .where(ClientSecret.secret_hash.in_(list(by_hash)))
        .order_by(ClientSecret.secret_id)
    ).all()
    now = clock.now()
    disabled = []
    for secret_id, client_id, stored_hash, org in rows:
        if not secret_hash_matches(by_hash[stored_hash], stored_hash, pepper):
            continue
        # Only the first report of a secret marks it and is audited (two reports may race).
        marked = affected_rows(
            update(ClientSecret)
            .where(ClientSecret.secret_id == secret_id, ClientSecret.leaked_at.is_(None))
            .values(leaked_at=now)
            .execution_options(synchronize_session=False)
        )
        if marked:
            record_event(reporter, org, "secret.leaked", "client_secret", secret_id, client_id=client_id)
            disabled.append((secret_id, client_id))
    return disabled
