"""Secrets you can tell apart: an optional label per secret, given when it is added through the CLI
(`secret add --label`), the management API (`label`) or the console's form, stored as given (trimmed),
shown in every listing, and refused with a clear error (nothing stored) when it is not up to 100
printable characters on one line."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from authserver.extensions import db
from authserver.models import AuditEvent, ClientSecret
from authserver.services.client_secrets import LABEL_MAX

from .api_support import API, assert_problem
from .helpers import case
from .test_secret_expiry import Cli, page_text, secrets_section

GOOD = "production · billing-worker (k8s, eu-west-1)"
BAD_LABELS = [
    ("x" * (LABEL_MAX + 1), "at most 100 characters"),
    ("line one\nline two", "one line"),
    ("tab\there", "control characters"),
    ("bell\x07", "control characters"),
]


def rows(client_id: str) -> list[ClientSecret]:
    db.session.rollback()
    return list(db.session.scalars(select(ClientSecret).where(ClientSecret.client_id == client_id)
                                   .order_by(ClientSecret.created_at, ClientSecret.secret_id)))


def created_event(secret_id: str) -> AuditEvent:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == "secret.created",
                                                       AuditEvent.object_id == secret_id)).one()


def test_cli_stores_and_lists_a_label_and_refuses_a_bad_one(app, tenant):
    cli = Cli(app)
    before = {r.secret_id for r in rows(tenant.client_id)}
    added = cli.json("secret", "add", tenant.client_id, "--label", f"  {GOOD}  ")
    assert added["label"] == GOOD
    stored = db.session.get(ClientSecret, added["secret_id"])
    assert stored.label == GOOD and added["client_secret"] not in (stored.label or "")
    assert json.loads(created_event(added["secret_id"]).details)["label"] == GOOD
    listed = {row["secret_id"]: row for row in cli.json("secret", "list", tenant.client_id)}
    assert listed[added["secret_id"]]["label"] == GOOD
    assert all(listed[sid]["label"] is None for sid in before)  # older secrets: no label
    human = cli.run("secret", "list", tenant.client_id)
    assert f'{added["secret_id"]}  …{added["client_secret"][-4:]}  "{GOOD}"  created ' in human.stdout
    blank = cli.json("secret", "add", tenant.client_id, "--label", "   ")
    assert blank["label"] is None and db.session.get(ClientSecret, blank["secret_id"]).label is None

    count = len(rows(tenant.client_id))
    for label, needle in BAD_LABELS:
        with case(label):
            cli.fails("secret", "add", tenant.client_id, "--label", label, needle=needle)
            assert len(rows(tenant.client_id)) == count


def test_api_stores_returns_and_lists_a_label_and_refuses_a_bad_one(http, manager):
    cid, h = manager.tenant.client_id, manager.headers()
    url = f"{API}/clients/{cid}/secrets"
    response = http.post(url, json={"label": GOOD, "expires_in_days": 30}, headers=h)
    assert response.status_code == 201
    body = response.get_json()
    assert body["label"] == GOOD
    assert db.session.get(ClientSecret, body["secret_id"]).label == GOOD
    assert http.get(f"{url}/{body['secret_id']}", headers=h).get_json()["label"] == GOOD
    items = {s["secret_id"]: s for s in http.get(url, headers=h).get_json()["items"]}
    assert items[body["secret_id"]]["label"] == GOOD and items[manager.tenant.secret_id]["label"] is None
    unlabelled = http.post(url, headers=h).get_json()
    assert unlabelled["label"] is None and db.session.get(ClientSecret, unlabelled["secret_id"]).label is None

    count = len(rows(cid))
    # The rules' refusals are 400 invalid-input; a member of the wrong JSON type is 422, like everywhere.
    for label, needle, status in [*((lb, nd, 400) for lb, nd in BAD_LABELS), (42, "str", 422), (None, "str", 422)]:
        with case(label):
            refused = http.post(url, json={"label": label}, headers=h)
            assert_problem(refused, status, field="label")
            assert needle.lower() in refused.get_data(as_text=True).lower()
            assert len(rows(cid)) == count


def test_api_document_describes_the_label(http, manager):
    document = http.get(f"{API}/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    assert "label" in schemas["SecretCreate"]["properties"]
    assert "label" in schemas["SecretOut"]["required"]


def test_console_adds_a_labelled_secret_shows_it_with_its_times_and_refuses_a_bad_label(console, console_admin):
    from authserver.services.clients import register_client

    client = register_client(console_admin.org_id, "Payments")
    page = f"/console/apps/{client.client_id}"
    response = console.submit(page, page + "/secrets", {"label": GOOD})
    assert response.status_code == 200
    (row,) = rows(client.client_id)
    assert row.label == GOOD
    html = page_text(response)
    assert "“production · billing-worker (k8s, eu-west-1)”" in html.split('id="new-secret-panel"', 1)[1]
    listing = secrets_section(page_text(console.get(page)))
    cell = listing.split('secret-cell"', 1)[1].split("</td>", 1)[0]
    assert GOOD in cell and row.secret_id in cell
    assert "Created" in listing and "Last used" in listing
    assert 'data-label="Created"' in listing and 'data-label="Last used"' in listing

    for label, needle in BAD_LABELS:
        with case(label):
            refused = console.submit(page, page + "/secrets", {"label": label})
            assert refused.status_code == 400
            text = page_text(refused)
            assert needle in text and 'class="field-error"' in text and "it will not be shown again" not in text
            assert len(rows(client.client_id)) == 1


@pytest.mark.parametrize("label", ["ascs_", "名前 – ünïcode ✓"])
def test_any_printable_text_is_kept_exactly(http, manager, label):
    url = f"{API}/clients/{manager.tenant.client_id}/secrets"
    body = http.post(url, json={"label": label}, headers=manager.headers()).get_json()
    assert db.session.get(ClientSecret, body["secret_id"]).label == label
