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


def list_events(org_id: str, limit: int = 100, before_id: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(min(max(limit, 1), 500))))
