"""/audit-events: who changed what in the organization, when and from where; newest first."""
from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from ..models import AuditEvent
from ..services import audit as audit_service
from ..services.audit import INT64_MAX
from .auth import CallContext
from .routing import operation
from .schemas import QueryParameters, ResponseBody, Timestamp, timestamp

TAG = "Audit"
DEFAULT_LIMIT = 100


class AuditQuery(QueryParameters):
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=INT64_MAX,
                       description=f"How many events, newest first (at most {audit_service.PAGE_MAX} are returned).")
    before: int | None = Field(default=None, ge=1, le=INT64_MAX,
                               description="Only events older than this event id: the `next_before` of the previous page.")


class AuditEventOut(ResponseBody):
    id: int
    created_at: Timestamp
    actor: str = Field(description="The account id of who made the change, or `cli` for the operator.")
    action: str = Field(description="e.g. client.created, secret.deleted, account.disabled.")
    object_type: str
    object_id: str
    ip_address: str | None
    details: dict[str, Any] = Field(description="What changed; never a secret.")

    @classmethod
    def of(cls, event: AuditEvent) -> "AuditEventOut":
        return cls(id=event.id, created_at=timestamp(event.created_at), actor=event.actor, action=event.action,
                   object_type=event.object_type, object_id=event.object_id, ip_address=event.ip_address,
                   details=json.loads(event.details or "{}"))


class AuditEventPage(ResponseBody):
    items: list[AuditEventOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null on the last page.")


@operation("GET", "/audit-events", summary="Read the organization's audit log", tag=TAG, query=AuditQuery,
           responses={200: AuditEventPage})
def list_audit_events(ctx: CallContext, query: AuditQuery):
    events, next_before = audit_service.page_events(ctx.org_id, limit=query.limit, before_id=query.before)
    return AuditEventPage(items=[AuditEventOut.of(e) for e in events], next_before=next_before)
