"""The audit log: every change to clients, secrets, keys and accounts writes one event; one query
function pages through an organization's events, newest first, with filters (the console and the
management API both call it)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, exists, literal, or_, select

from .. import clock
from ..errors import InvalidInput
from ..extensions import db
from ..models import AuditEvent
from .common import Actor, is_identifier


def record_event(
    actor: Actor, org_id: str | None, action: str, object_type: str, object_id: str, **details: Any
) -> None:
    """Add an event to the caller's transaction. `details` must never hold a secret."""
    db.session.add(
        AuditEvent(
            org_id=org_id,
            actor=actor.actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            ip_address=actor.ip_address,
            details=json.dumps(details, sort_keys=True),
            created_at=clock.now(),
        )
    )


# What each action means, for people reading the log (an action missing here is shown as it is).
ACTION_LABELS = {
    "organization.created": "Organization created",
    "account.created": "Account created",
    "account.disabled": "Account disabled",
    "account.enabled": "Account enabled",
    "account.password_set": "Password set by an operator",
    "account.password_changed": "Password changed",
    "account.password_change_refused": "Password change refused (wrong current password)",
    "console.signed_in": "Signed in to the console",
    "console.sign_in_failed": "Console sign-in failed",
    "console.signed_out": "Signed out of the console",
    "console.signed_out_everywhere": "Signed out everywhere",
    "client.created": "App registered",
    "client.updated": "App changed",
    "client.deleted": "App deleted",
    "client.granted": "API access given",
    "client.grant_updated": "API access changed",
    "client.ungranted": "API access removed",
    "secret.created": "Secret added",
    "secret.deleted": "Secret deleted",
    "secret.leaked": "Secret reported leaked and disabled",
    "secret.expiring": "Secret expires soon",
    "key.created": "Public key added",
    "key.deleted": "Public key deleted",
    "key_url.added": "Key URL set",
    "key_url.deleted": "Key URL removed",
    "api.created": "API registered",
    "api.updated": "API changed",
    "api.deleted": "API deleted",
    "api.opened": "Platform API opened",
    "api.closed": "Platform API closed",
    "api.scope_added": "Scope added",
    "api.scope_removed": "Scope removed",
    "api.client_bound": "App bound to an API",
    "api.client_unbound": "App unbound from an API",
    "signing_key.rotated": "Signing key rotated",
    "signing_key.withdrawn": "Signing key withdrawn",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


PAGE_MAX = 500
INT64_MAX = 2**63 - 1
FILTER_MAX = 128  # the longest stored object id; longer filter values can match nothing

DATE_FORMAT = "an ISO 8601 date (2030-01-31) or date-time with a time zone (2030-01-31T12:00:00Z)"


@dataclass(frozen=True)
class AuditFilter:
    """Which events to list: every condition given must hold. Times are epoch seconds, inclusive."""

    action: str | None = None  # an exact action, e.g. secret.created
    actor: str | None = None  # an account id, `cli`, `leak-report`, …
    target: str | None = None  # the object's id, or the client an event concerns (a secret's or key's client)
    since: int | None = None
    until: int | None = None

    def is_empty(self) -> bool:
        return self == AuditFilter()


def parse_time_bound(value: object, field: str, *, end_of_day: bool = False) -> int | None:
    """A filter time given as text: a date (its first second, or with end_of_day its last) or an ISO
    8601 date-time with a time zone. Empty text means no bound."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"The time must be {DATE_FORMAT}.", field=field)
    text = value.strip()
    try:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise InvalidInput("The time needs a time zone (Z for UTC, or an offset such as +02:00).",
                                   field=field) from None
            return int(moment.timestamp())
        start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        return start + 86399 if end_of_day else start
    except (ValueError, OverflowError):
        raise InvalidInput(f"The time must be {DATE_FORMAT}.", field=field) from None


def _text_filter(value: object, field: str, what: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not is_identifier(value.strip(), FILTER_MAX):
        raise InvalidInput(f"The {what} filter must be printable text of at most {FILTER_MAX} characters.",
                           field=field)
    return value.strip()


def make_filter(action: object = None, actor: object = None, target: object = None, since: object = None,
                until: object = None) -> AuditFilter:
    """The filter from values people or programs typed; a bad value raises InvalidInput naming its field."""
    result = AuditFilter(
        action=_text_filter(action, "action", "event type"),
        actor=_text_filter(actor, "actor", "actor"),
        target=_text_filter(target, "target", "target"),
        since=since if isinstance(since, int) else parse_time_bound(since, "since"),
        until=until if isinstance(until, int) else parse_time_bound(until, "until", end_of_day=True),
    )
    if result.since is not None and result.until is not None and result.since > result.until:
        raise InvalidInput("The start of the time range is after its end.", field="since")
    return result


def _conditions(org_id: str, where: AuditFilter) -> list[Any]:
    conditions = [AuditEvent.org_id == org_id]
    if where.action is not None:
        conditions.append(AuditEvent.action == where.action)
    if where.actor is not None:
        conditions.append(AuditEvent.actor == where.actor)
    if where.target is not None:
        # Events about a client's secret or key name the client in their details (sorted JSON).
        conditions.append(or_(AuditEvent.object_id == where.target,
                              AuditEvent.details.contains(f'"client_id": {json.dumps(where.target)}',
                                                          autoescape=True)))
    if where.since is not None:
        conditions.append(AuditEvent.created_at >= where.since)
    if where.until is not None:
        conditions.append(AuditEvent.created_at <= where.until)
    return conditions


@dataclass(frozen=True)
class AuditPage:
    """Events newest first, and the cursors of the neighbouring pages (None: there is none)."""

    events: list[AuditEvent]
    older: int | None  # pass as before_id: the page of older events
    newer: int | None  # pass as after_id: the page of newer events


def _cursor(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT64_MAX:
        raise InvalidInput(f"The {field} cursor must be an event id from 1 to {INT64_MAX}.", field=field)
    return value


def find_events(org_id: str, where: AuditFilter | None = None, limit: int = 100, before_id: int | None = None,
                after_id: int | None = None) -> AuditPage:
    """One page (at most PAGE_MAX) of the organization's events matching `where`, newest first: the
    newest ones, those just older than event `before_id`, or those just newer than event `after_id`."""
    where = where or AuditFilter()
    before_id, after_id = _cursor(before_id, "before"), _cursor(after_id, "after")
    if before_id is not None and after_id is not None:
        raise InvalidInput("Give either the before or the after cursor, not both.", field="before")
    size = min(max(limit, 1), PAGE_MAX)
    conditions = _conditions(org_id, where)
    query = select(AuditEvent).where(*conditions)
    # A cursor is any id up to INT64_MAX, compared as a 64-bit integer: PostgreSQL's column is 32-bit,
    # and a larger value bound as the column's type would be refused ("integer out of range").
    if after_id is not None:
        newer_than = AuditEvent.id > literal(after_id, BigInteger)
        events = list(db.session.scalars(query.where(newer_than).order_by(AuditEvent.id).limit(size)))
        events.reverse()
    else:
        if before_id is not None:
            query = query.where(AuditEvent.id < literal(before_id, BigInteger))
        events = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(size)))
    if not events:
        return AuditPage([], None, None)

    def any_beyond(condition: Any) -> bool:
        return bool(db.session.scalar(select(exists().where(*conditions, condition))))

    older = events[-1].id if any_beyond(AuditEvent.id < events[-1].id) else None
    newer = events[0].id if any_beyond(AuditEvent.id > events[0].id) else None
    return AuditPage(events, older, newer)


def page_events(org_id: str, limit: int = 100, before_id: int | None = None) -> tuple[list[AuditEvent], int | None]:
    """A page of events, newest first (at most PAGE_MAX), and the `before_id` of the next, older page
    (None on the last page)."""
    page = find_events(org_id, limit=limit, before_id=before_id)
    return page.events, page.older


def event_choices(org_id: str) -> tuple[list[str], list[str]]:
    """The actions and the actors the organization's log holds, for filter menus."""
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == org_id).distinct())
    actors = db.session.scalars(select(AuditEvent.actor).where(AuditEvent.org_id == org_id).distinct())
    return sorted(actions), sorted(actors)
