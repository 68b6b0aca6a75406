"""Console service accounts (list, create, disable) and the audit log."""
import pytest
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import Account, AuditEvent
from authserver.services.accounts import create_account, get_account
from authserver.services.audit import record_event
from authserver.services.common import Actor

from ..conftest import get_token, make_tenant
from ..console_support import make_admin, signed_in

ACCOUNTS = "/console/accounts"


def text(response) -> str:
    return response.get_data(as_text=True)


def service_count(org_id: str) -> int:
    query = select(func.count()).select_from(Account).where(Account.org_id == org_id, Account.kind == "service")
    return db.session.scalar(query)


def test_empty_state_and_create_a_service_account(console, console_admin):
    html = text(console.get(ACCOUNTS))
    assert "No service accounts yet" in html and '<label for="name">Name</label>' in html
    response = console.submit(ACCOUNTS, ACCOUNTS, {"name": "billing-worker"})
    assert response.status_code == 303 and response.headers["Location"] == ACCOUNTS
    (account,) = db.session.scalars(
        select(Account).where(Account.org_id == console_admin.org_id, Account.kind == "service")
    )
    assert account.name == "billing-worker" and account.email is None and account.password_hash is None
    html = text(console.get(ACCOUNTS))
    assert account.account_id in html and "Active" in html
    assert f"Use {account.account_id} as the sub of its assertions." in html


def test_the_list_holds_service_accounts_only(console, console_admin):
    html = text(console.get(ACCOUNTS))
    assert console_admin.account_id not in html and console_admin.email not in html.split("<main", 1)[1]


@pytest.mark.parametrize("name, message", [("w" * 101, "Account name must be at most 100 characters."),
                                           ("", "Account name is required.")])
def test_bad_account_names_are_refused(console, console_admin, name, message):
    response = console.submit(ACCOUNTS, ACCOUNTS, {"name": name})
    assert response.status_code == 400
    assert message in text(response) and 'id="name-error"' in text(response)
    assert service_count(console_admin.org_id) == 0


def test_disable_a_service_account_with_confirmation_and_its_tokens_stop(app, http):
    tenant = make_tenant("Ops")
    console = signed_in(app, make_admin(org_id=tenant.org_id))
    token = get_token(http, tenant)["access_token"]
    disable = f"{ACCOUNTS}/{tenant.account_id}/disable"
    html = text(console.get(ACCOUNTS))
    assert f'action="{disable}"' in html and '<dialog id="disable-account-1"' in html
    confirm = console.get(disable)
    assert confirm.status_code == 200 and "An operator can enable it again" in text(confirm)
    assert get_account(tenant.account_id).disabled_at is None
    response = console.submit(disable, disable)
    assert response.status_code == 303
    db.session.expire_all()
    assert get_account(tenant.account_id).disabled_at is not None
    html = text(console.get(ACCOUNTS))
    assert "Disabled “Ops worker”." in html and "Disabled 20" in html
    assert f'action="{disable}"' not in html  # nothing left to disable
    introspection = http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth())
    assert introspection.get_json() == {"active": False}
    refused = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"


def test_user_accounts_cannot_be_disabled_from_the_service_accounts_page(console, console_admin):
    colleague = make_admin(org_id=console_admin.org_id)
    for url in (f"{ACCOUNTS}/{colleague.account_id}/disable", f"{ACCOUNTS}/{console_admin.account_id}/disable"):
        assert console.get(url).status_code == 404
    assert get_account(colleague.account_id).disabled_at is None


def test_audit_log_shows_who_did_what_when_and_from_where(console, console_admin):
    console.submit("/console/apps/new", "/console/apps/new", {"name": "Audited app"})
    console.submit(ACCOUNTS, ACCOUNTS, {"name": "audited-worker"})
    html = text(console.get("/console/audit"))
    assert "client.created" in html and "account.created" in html
    assert console_admin.email in html  # the actor, by email rather than id
    assert "127.0.0.1" in html
    assert "Audited app" in html  # the event's details
    assert '<time datetime="20' in html


def test_audit_log_pages_through_older_events(console, console_admin):
    for i in range(60):
        record_event(Actor("cli"), console_admin.org_id, "test.event", "thing", f"thing-{i:02d}")
    db.session.commit()
    first = text(console.get("/console/audit"))
    assert "thing-59" in first and "thing-10" in first and "thing-09" not in first
    assert "Older events" in first
    newest_hidden = db.session.scalars(select(AuditEvent).where(AuditEvent.object_id == "thing-10")).one()
    response = console.get(f"/console/audit?before={newest_hidden.id}")
    second = text(response)
    assert "thing-09" in second and "thing-10" not in second and "Newest events" in second


def test_audit_log_is_empty_for_a_fresh_org_except_its_creation(console):
    html = text(console.get("/console/audit"))
    assert "organization.created" in html and "account.created" in html


def test_service_account_ids_feed_the_token_story(console, console_admin):
    account = create_account(console_admin.org_id, "story-worker", "service")
    assert f"<code class=\"mono\">{account.account_id}</code>" in text(console.get(ACCOUNTS))
