"""Every change made through the API writes an audit event (actor, time, IP, object, action), and no
event ever holds a secret; /audit-events pages through them newest first."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.extensions import db
from authserver.models import AuditEvent

from ..conftest import public_pem
from .api_support import API, assert_problem, png_bytes

CALLER_IP = "203.0.113.7"
PASSWORD = "correct horse battery staple, again"


def every_change(http, manager) -> tuple[list[tuple[str, str]], list[str]]:
    """Make one change of each kind through the API; return the (action, object_id) expected, oldest
    first, and the secrets that passed through."""
    h = manager.headers()
    env = {"REMOTE_ADDR": CALLER_IP}
    expected = []

    client = http.post(f"{API}/clients", json={"name": "Audited"}, headers=h, environ_base=env).get_json()
    cid = client["client_id"]
    expected.append(("client.created", cid))
    http.patch(f"{API}/clients/{cid}", json={"name": "Audited 2"}, headers=h, environ_base=env)
    expected.append(("client.updated", cid))
    http.put(
        f"{API}/clients/{cid}/icon", data=png_bytes(), headers={**h, "Content-Type": "image/png"}, environ_base=env
    )
    expected.append(("client.updated", cid))
    http.delete(f"{API}/clients/{cid}/icon", headers=h, environ_base=env)
    expected.append(("client.updated", cid))
    new_secret = http.post(f"{API}/clients/{cid}/secrets", headers=h, environ_base=env).get_json()
    expected.append(("secret.created", new_secret["secret_id"]))
    http.delete(f"{API}/clients/{cid}/secrets/{new_secret['secret_id']}", headers=h, environ_base=env)
    expected.append(("secret.deleted", new_secret["secret_id"]))
    pem = public_pem(ec.generate_private_key(ec.SECP256R1())).decode()
    http.post(f"{API}/clients/{cid}/keys", json={"key": pem, "kid": "audited"}, headers=h, environ_base=env)
    expected.append(("key.created", "audited"))
    http.delete(f"{API}/clients/{cid}/keys/audited", headers=h, environ_base=env)
    expected.append(("key.deleted", "audited"))
    account = http.post(f"{API}/accounts", json={"name": "Person", "kind": "user", "email": "person@example.com",
                                                  "password": PASSWORD}, headers=h, environ_base=env).get_json()
    expected.append(("account.created", account["account_id"]))
    http.patch(f"{API}/accounts/{account['account_id']}", json={"disabled": True}, headers=h, environ_base=env)
    expected.append(("account.disabled", account["account_id"]))
    http.delete(f"{API}/clients/{cid}", headers=h, environ_base=env)
    expected.append(("client.deleted", cid))
    return expected, [new_secret["client_secret"], PASSWORD, manager.token, manager.tenant.client_secret]


def test_every_change_is_audited_with_actor_ip_and_object(http, manager):
    expected, secrets = every_change(http, manager)
    response = http.get(f"{API}/audit-events?limit={len(expected)}", headers=manager.headers())
    assert response.status_code == 200
    events = response.get_json()["items"]
    assert [(e["action"], e["object_id"]) for e in events] == list(reversed(expected))
    for event in events:
        assert event["actor"] == manager.user_id
        assert event["ip_address"] == CALLER_IP
        assert event["created_at"].endswith("Z")
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    text = response.get_data(as_text=True)
    for secret in secrets:
        assert secret not in text


def test_no_audit_row_ever_holds_a_secret(http, manager):
    _, secrets = every_change(http, manager)
    for row in db.session.query(AuditEvent).all():
        stored = json.dumps([row.actor, row.action, row.object_type, row.object_id, row.ip_address, row.details])
        for secret in secrets:
            assert secret not in stored
        assert "password" not in json.loads(row.details)
        assert "hash" not in row.details


def test_refused_changes_write_no_event(http, manager):
    before = db.session.query(AuditEvent).count()
    h = manager.headers()
    http.post(f"{API}/clients", json={"name": "x" * 500}, headers=h)
    http.post(f"{API}/clients", json={"name": "Public", "client_type": "public"}, headers=h)
    http.post(f"{API}/clients/{manager.tenant.client_id}/keys", json={"key": "nope"}, headers=h)
    http.put(
        f"{API}/clients/{manager.tenant.client_id}/icon", data=b"<svg/>", headers={**h, "Content-Type": "image/png"}
    )
    http.post(f"{API}/accounts", json={"name": "S", "kind": "service", "resource_server": True}, headers=h)
    assert db.session.query(AuditEvent).count() == before


def test_paging_with_limit_and_before(http, manager):
    expected, _ = every_change(http, manager)
    everything = http.get(f"{API}/audit-events", headers=manager.headers()).get_json()
    assert everything["next_before"] is None
    seen, before, pages = [], None, 0
    while True:
        url = f"{API}/audit-events?limit=4" + (f"&before={before}" if before else "")
        page = http.get(url, headers=manager.headers()).get_json()
        assert len(page["items"]) <= 4
        seen += page["items"]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
    assert seen == everything["items"] and pages == -(-len(seen) // 4)


@pytest.mark.parametrize("query", ["limit=0", "limit=-3", "limit=abc", "before=0", "before=x", f"before={2**64}",
                                   "limit=1.5"])
def test_bad_paging_parameters_are_422(http, manager, query):
    assert_problem(http.get(f"{API}/audit-events?{query}", headers=manager.headers()), 422)


@pytest.mark.parametrize("cursor", [2**31 - 1, 2**31, 2**40, 2**63 - 1])
def test_cursors_beyond_every_event_id_page_as_any_other_in_the_api_and_the_console(http, manager, cursor):
    """Any id up to 2**63 - 1 is a valid cursor, whatever the width of the database's id column (PostgreSQL's
    is 32-bit): before it lies every event, after it none."""
    every_change(http, manager)
    newest = http.get(f"{API}/audit-events", headers=manager.headers()).get_json()["items"]
    older = http.get(f"{API}/audit-events?before={cursor}", headers=manager.headers())
    assert older.status_code == 200, older.get_data(as_text=True)[:300]
    assert older.get_json()["items"] == newest
    newer = http.get(f"{API}/audit-events?after={cursor}", headers=manager.headers())
    assert newer.status_code == 200 and newer.get_json() == {"items": [], "next_before": None, "next_after": None}
    from ..console_support import make_admin, signed_in

    console = signed_in(http.application, make_admin(org_id=manager.org_id))
    older_page = console.get(f"/console/audit?before={cursor}")
    assert older_page.status_code == 200, older_page.status_code
    html = older_page.get_data(as_text=True)
    assert f"<code>{newest[0]['action']}</code>" in html and newest[0]["object_id"] in html and "No events" not in html
    newer_page = console.get(f"/console/audit?after={cursor}")
    assert newer_page.status_code == 200 and "No events on this page." in newer_page.get_data(as_text=True)


def test_large_limit_is_capped_not_refused(http, manager):
    response = http.get(f"{API}/audit-events?limit=1000000", headers=manager.headers())
    assert response.status_code == 200 and response.get_json()["next_before"] is None


def test_events_of_another_organization_are_not_listed(http, manager, other_manager):
    every_change(http, other_manager)
    mine = http.get(f"{API}/audit-events?limit=500", headers=manager.headers()).get_json()["items"]
    assert mine and all(e["actor"] != other_manager.user_id for e in mine)
    theirs = http.get(f"{API}/audit-events?limit=500", headers=other_manager.headers()).get_json()["items"]
    assert {e["id"] for e in mine}.isdisjoint({e["id"] for e in theirs})
    assert {e["object_id"] for e in theirs} >= {other_manager.org_id, other_manager.user_id}
    assert manager.org_id not in {e["object_id"] for e in theirs}
