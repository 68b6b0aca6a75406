from __future__ import annotations

from .. import clock
from ..errors import NotFound
from ..extensions import db
from ..models import Organization
from .audit import record_event
from .common import CLI_ACTOR, Actor, clean_name, is_identifier, new_id, transactional


@transactional
def create_organization(name: str, actor: Actor = CLI_ACTOR) -> Organization:
    org = Organization(org_id=new_id("org_"), name=clean_name(name, "Organization name"), created_at=clock.now())
    db.session.add(org)
    record_event(actor, org.org_id, "organization.created", "organization", org.org_id, name=org.name)
    return org


def get_organization(org_id: str) -> Organization:
    org = db.session.get(Organization, org_id) if is_identifier(org_id) else None
    if org is None:
        raise NotFound("Organization not found.")
    return org


def list_organizations() -> list[Organization]:
    from sqlalchemy import select

    return list(db.session.scalars(select(Organization).order_by(Organization.created_at, Organization.org_id)))
