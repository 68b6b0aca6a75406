"""The command line: organizations."""
from __future__ import annotations

import click

from .. import clock
from .output import with_app


@click.group()
def org():
    """Organizations."""


@org.command("create")
@click.argument("name")
@with_app
def org_create(name):
    """Create an organization."""
    from ..services.organizations import create_organization

    o = create_organization(name)
    return {"org_id": o.org_id}, o.org_id


@org.command("list")
@with_app
def org_list():
    """List organizations."""
    from ..services.organizations import list_organizations

    rows = [
        {"org_id": o.org_id, "name": o.name, "created_at": clock.isoformat(o.created_at)} for o in list_organizations()
    ]
    return rows, "\n".join(f"{r['org_id']}  {r['name']}" for r in rows) or "No organizations."
