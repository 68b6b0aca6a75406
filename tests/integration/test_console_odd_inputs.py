"""Identifiers, emails and paging values a person can type into a URL or a form, which the
database would refuse (NUL in PostgreSQL text, integers beyond 64 bits, over-long keys): each gets
a clear 4xx answer, never a 500, and nothing is stored."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import AuditEvent, RateLimitCounter


@pytest.mark.parametrize("path", [
    "/console/apps/ab%00cd",
    "/console/apps/ab%00cd/edit",
    "/console/apps/ab%00cd/icon",
    "/console/apps/ab%00cd/delete",
    "/console/accounts/ac%00c/disable",
    "/console/apps/" + "f" * 5000,
])
def test_unnameable_ids_are_not_found(console, path):
    assert console.get(path).status_code == 404


def test_unnameable_secret_and_key_ids_are_not_found(console, console_admin):
    from authserver.services.clients import register_client

    client = register_client(console_admin.org_id, "App")  # an app of the signed-in admin's organization
    for path in (f"/console/apps/{client.client_id}/secrets/se%00c/delete",
                 f"/console/apps/{client.client_id}/keys/k%00/delete"):
        assert console.get(path).status_code == 404, path


@pytest.mark.parametrize("before", ["-99999999999999999999999", "99999999999999999999999", "0", "abc", "%00"])
def test_audit_paging_values_beyond_the_column_are_harmless(console, before):
    # Refused with the reason, never a server error: the cursor is an event id, a whole number from 1.
    response = console.get(f"/console/audit?before={before}")
    assert response.status_code == 400
    assert "before" in response.get_data(as_text=True)


@pytest.mark.parametrize("email", ["a\x00b@example.com", "é" * 300 + "@example.com"])
def test_sign_in_with_an_unusable_email_is_refused_and_counted(app, email):
    anon = app.test_client()
    page = anon.get("/console/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    response = anon.post("/console/sign-in", data={"csrf_token": token, "email": email, "password": "x" * 20})
    assert response.status_code == 400
    assert "not correct" in response.get_data(as_text=True)
    # The failure is counted under a bounded, database-safe key; nothing else was written.
    buckets = db.session.scalars(select(RateLimitCounter.bucket)).all()
    assert buckets and all(len(b) <= 200 and "\x00" not in b for b in buckets)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
