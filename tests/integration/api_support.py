"""Helpers for the management API tests: an organization whose admin user holds a `manage` token.
Test modules import the fixtures they use from here."""
from __future__ import annotations

import io
import json
import secrets
from dataclasses import dataclass

import pytest
from PIL import Image

from ..conftest import MANAGEMENT_API, Tenant, get_token, make_tenant, one_transaction

API = "/api/v1"
PROBLEM_JSON = "application/problem+json"
ADMIN_PASSWORD = "correct horse battery staple"


@dataclass
class Manager:
    """An organization (with the conftest Tenant's client, secret and key), an admin user of it, and a
    bearer token for that user with the manage scope."""

    tenant: Tenant
    user_id: str
    token: str

    @property
    def org_id(self) -> str:
        return self.tenant.org_id

    def headers(self, **extra) -> dict:
        return {"Authorization": f"Bearer {self.token}", **extra}


def user_token(http, tenant: Tenant, account_id: str, scope: str = "manage") -> str:
    """An access token whose subject is `account_id`, obtained at /oauth/token like any client would."""
    form = {"resource": MANAGEMENT_API} if "manage" in scope.split() else {}
    return get_token(http, tenant, assertion=tenant.assertion(sub=account_id), scope=scope, **form)["access_token"]


def make_manager(http, name: str = "Acme", scope: str = "manage read") -> Manager:
    from ..console_support import create_user_with_admin_password

    with one_transaction():
        tenant = make_tenant(name, scope=scope)
        user_id = create_user_with_admin_password(tenant.org_id, f"{name} admin",
                                                  f"admin-{secrets.token_hex(4)}@example.com", is_admin=True).account_id
    return Manager(tenant, user_id, user_token(http, tenant, user_id))


@pytest.fixture
def manager(app, http) -> Manager:
    return make_manager(http)


@pytest.fixture
def other_manager(app, http) -> Manager:
    return make_manager(http, "Globex")


def png_bytes(size: tuple[int, int] = (32, 32), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, format=fmt)
    return out.getvalue()


def assert_problem(response, status: int, *, field: str | None = None) -> dict:
    """The response is problem+json (RFC 9457) with this status; returns the body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == PROBLEM_JSON, response.mimetype
    body = json.loads(response.get_data(as_text=True))
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["type"], str) and body["type"]
    if field is not None:
        assert body.get("field") == field or any(e["field"] == field for e in body.get("errors", [])), body
    return body
