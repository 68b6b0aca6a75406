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
    before: int | None = Field(
        default=None,
        ge=1,
        le=INT64_MAX,
        description="Only events older than this event id: the `next_before` of the previous page.",
    )
    after: int | None = Field(default=None, ge=1, le=INT64_MAX,
                              description="Only events newer than this event id (the `next_after` of a page): the "
                                          "page of newer events, still newest first. Not with `before`.")
    action: str | None = Field(default=None, max_length=audit_service.FILTER_MAX,
                               description="Only events of this type, e.g. `secret.created` or `console.signed_in`.")
    actor: str | None = Field(default=None, max_length=audit_service.FILTER_MAX,
                              description="Only events made by this account id (or `cli`, `leak-report`, "
                                          "`expiry-notice`).")
    target: str | None = Field(default=None, max_length=audit_service.FILTER_MAX,
                               description="Only events about this object id, or about this client's secrets, "
                                           "keys and access (a client id).")
    since: str | None = Field(default=None, max_length=64, json_schema_extra={"format": "date-time"},
                              description="Only events at or after this time: an RFC 3339 date-time with a time "
                                          "zone, or a date (its first second, UTC).")
    until: str | None = Field(default=None, max_length=64, json_schema_extra={"format": "date-time"},
                              description="Only events at or before this time: an RFC 3339 date-time with a time "
                                          "zone, or a date (its last second, UTC).")


class AuditEventOut(ResponseBody):
    id: int
    created_at: Timestamp
    actor: str = Field(description="The account id of who made the change, or `cli` for the operator.")
    action: str = Field(description="e.g. client.created, secret.deleted, account.disabled.")
    action_label: str = Field(description="What the action means, in words (e.g. Signed in to the console).")
    object_type: str
    object_id: str
    ip_address: str | None
    details: dict[str, Any] = Field(description="What changed; never a secret.")

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(id=event.id, created_at=timestamp(event.created_at), actor=event.actor, action=event.action,
                   action_label=audit_service.action_label(event.action),
                   object_type=event.object_type, object_id=event.object_id, ip_address=event.ip_address,
                   details=json.loads(event.details or "{}"))


class AuditEventPage(ResponseBody):
    items: list[AuditEventOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null on the last page.")
    next_after: int | None = Field(description="Pass as `after` for the page of newer events; null when none is newer.")


@operation("GET", "/audit-events", summary="Read the organization's audit log", tag=TAG, query=AuditQuery,
           responses={200: AuditEventPage}, errors=(400,),
           description="Newest first. Filters combine (all must hold); a bad filter value is 400 with the "
                       "parameter named. Page with `before` (older) or `after` (newer).")
def list_audit_events(ctx: CallContext, query: AuditQuery):
    where = audit_service.make_filter(action=query.action, actor=query.actor, target=query.target, since=query.since,
                                      until=query.until)
    page = audit_service.find_events(ctx.org_id, where, limit=query.limit, before_id=query.before,
                                     after_id=query.after)
    return AuditEventPage(items=[AuditEventOut.of(e) for e in page.events], next_before=page.older,
                          next_after=page.newer)
