"""The audit log: every change to clients, secrets, keys and accounts writes one event."""
from __future__ import annotations

import json

from sqlalchemy import select

from .. import clock
from ..extensions import db
from ..models import AuditEvent
from .common import Actor


def record_event(actor: Actor, org_id: str | None, action: str, object_type: str, object_id: str, **details) -> None:
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


PAGE_MAX = 500


INT64_MAX = 2**63 - 1


def _events(org_id: str, limit: int, before_id: int | None) -> list[AuditEvent]:
    if before_id is not None and before_id <= 1:
        return []  # nothing is older than the first event
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if before_id is not None and before_id <= INT64_MAX:
        query = query.where(AuditEvent.id < before_id)
    return list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))


def page_events(org_id: str, limit: int = 100, before_id: int | None = None) -> tuple[list[AuditEvent], int | None]:
    """A page of events, newest first (at most PAGE_MAX), and the `before_id` of the next, older page
    (None on the last page)."""
    size = min(max(limit, 1), PAGE_MAX)
    events = _events(org_id, size + 1, before_id)
    if len(events) > size:
        return events[:size], events[size - 1].id
    return events, None
