"""/clients and /clients/{client_id}/icon, and how the API answers bad requests."""
from __future__ import annotations

import io
import json

import pytest

from authserver.extensions import db
from authserver.models import AuditEvent, Client

from .api_support import API, assert_problem, png_bytes


def clients_of(org_id: str) -> list[Client]:
    return db.session.query(Client).filter_by(org_id=org_id).all()


def events_of(org_id: str) -> int:
    return db.session.query(AuditEvent).filter_by(org_id=org_id).count()


def test_create_show_list_update_delete(http, manager):
    h = manager.headers()
    created = http.post(f"{API}/clients", json={"name": "  Billing  ", "description": "Charges cards"}, headers=h)
    assert created.status_code == 201
    body = created.get_json()
    client_id = body["client_id"]
    assert len(client_id) == 32 and int(client_id, 16) >= 0 and client_id == client_id.lower()
    assert body["name"] == "Billing" and body["description"] == "Charges cards"
    assert body["client_type"] == "confidential" and body["icon_url"] is None
    assert "scope" not in body and "resource_server" not in body  # API access is its own resource: .../grants
    assert created.headers["Location"] == f"{API}/clients/{client_id}"
    stored = db.session.get(Client, client_id)
    assert stored.org_id == manager.org_id and stored.name == "Billing"

    shown = http.get(f"{API}/clients/{client_id}", headers=h)
    assert shown.status_code == 200 and shown.get_json() == body

    listed = http.get(f"{API}/clients", headers=h).get_json()["items"]
    assert {c["client_id"] for c in listed} == {manager.tenant.client_id, client_id}

    patched = http.patch(f"{API}/clients/{client_id}", json={"description": ""}, headers=h)
    assert patched.status_code == 200
    assert patched.get_json()["name"] == "Billing"  # left out, left alone
    assert patched.get_json()["description"] == ""
    db.session.expire_all()
    assert db.session.get(Client, client_id).description == ""

    deleted = http.delete(f"{API}/clients/{client_id}", headers=h)
    assert deleted.status_code == 204 and deleted.data == b""
    db.session.expire_all()
    assert db.session.get(Client, client_id) is None
    assert_problem(http.get(f"{API}/clients/{client_id}", headers=h), 404)
    assert_problem(http.delete(f"{API}/clients/{client_id}", headers=h), 404)


def test_deleting_a_client_makes_its_tokens_inactive(http, manager):
    # The manager's own token was issued to the manager's client: deleting that client through the
    # API makes the very token that asked for it inactive.
    assert http.delete(f"{API}/clients/{manager.tenant.client_id}", headers=manager.headers()).status_code == 204
    db.session.expire_all()
    assert clients_of(manager.org_id) == []
    assert_problem(http.get(f"{API}/clients", headers=manager.headers()), 401)


@pytest.mark.parametrize("payload", [
    {"name": "Public", "client_type": "public"},
    {"name": "Public", "token_endpoint_auth_method": "none"},
])
def test_public_clients_are_refused(http, manager, payload):
    response = http.post(f"{API}/clients", json=payload, headers=manager.headers())
    body = assert_problem(response, 400, field="client_type")
    assert body["type"].endswith("#problem-public-client-refused")
    assert "Public clients are not supported" in body["detail"]
    assert len(clients_of(manager.org_id)) == 1


def test_confidential_auth_methods_are_accepted_and_others_refused(http, manager):
    ok = http.post(
        f"{API}/clients",
        json={"name": "Post", "client_type": "confidential", "token_endpoint_auth_method": "client_secret_post"},
        headers=manager.headers(),
    )
    assert ok.status_code == 201
    bad = http.post(f"{API}/clients", json={"name": "JWT", "token_endpoint_auth_method": "private_key_jwt"},
                    headers=manager.headers())
    assert_problem(bad, 400, field="token_endpoint_auth_method")


@pytest.mark.parametrize("member", [{"resource_server": True}, {"scope": "manage"}])
@pytest.mark.parametrize("method,path_suffix", [("POST", ""), ("PATCH", "/{client_id}")])
def test_a_client_carries_neither_scopes_nor_a_resource_server_flag(http, manager, method, path_suffix, member):
    """What a client may get is its API access (PUT .../grants/{api_id}); which tokens it introspects follows
    from the APIs it is bound to (PUT /apis/{api_id}/clients/{client_id}). Neither is a member of the client:
    naming one is refused, and nothing changes."""
    path = f"{API}/clients" + path_suffix.format(client_id=manager.tenant.client_id)
    grants_before = http.get(f"{API}/clients/{manager.tenant.client_id}/grants", headers=manager.headers()).get_json()
    response = http.open(path, method=method, json={"name": "Platform", **member}, headers=manager.headers())
    assert_problem(response, 422, field=next(iter(member)))
    db.session.expire_all()
    assert [c.name for c in clients_of(manager.org_id)] == ["Acme backend"]
    assert http.get(f"{API}/clients/{manager.tenant.client_id}/grants",
                    headers=manager.headers()).get_json() == grants_before


@pytest.mark.parametrize("payload,field", [
    ({"name": "x" * 101}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "Bell\x07"}, "name"),
    ({"name": "ok", "description": "d" * 1001}, "description"),
])
def test_domain_rules_answer_400_with_the_field(http, manager, payload, field):
    before = events_of(manager.org_id)
    response = http.post(f"{API}/clients", json=payload, headers=manager.headers())
    body = assert_problem(response, 400, field=field)
    assert body["type"].endswith("#problem-invalid-input")
    assert len(clients_of(manager.org_id)) == 1 and events_of(manager.org_id) == before


@pytest.mark.parametrize("payload,field", [
    ({}, "name"),
    ({"name": 5}, "name"),
    ({"name": None}, "name"),
    ({"name": "ok", "scope": ["read"]}, "scope"),
    ({"name": "ok", "colour": "red"}, "colour"),
])
def test_schema_violations_answer_422_with_each_field(http, manager, payload, field):
    response = http.post(f"{API}/clients", json=payload, headers=manager.headers())
    body = assert_problem(response, 422, field=field)
    assert body["type"].endswith("#problem-validation-error")
    assert field in body["detail"]
    assert len(clients_of(manager.org_id)) == 1


def test_patch_refuses_null_for_a_name(http, manager):
    response = http.patch(f"{API}/clients/{manager.tenant.client_id}", json={"name": None}, headers=manager.headers())
    assert_problem(response, 422, field="name")


def test_html_in_a_name_is_stored_as_text_and_returned_as_json(http, manager):
    response = http.post(f"{API}/clients", json={"name": "<script>alert(1)</script>"}, headers=manager.headers())
    assert response.status_code == 201 and response.mimetype == "application/json"
    assert response.get_json()["name"] == "<script>alert(1)</script>"


@pytest.mark.parametrize("data,content_type,status", [
    ("{bad json", "application/json", 400),
    ("", "application/json", 400),
    ('{"name": NaN}', "application/json", 400),
    ('{"name": "\\ud800"}', "application/json", 400),
    (b'{"name": "\xff"}', "application/json", 400),
    ("[" * 100000 + "]" * 100000, "application/json", 400),
    ('["a list"]', "application/json", 422),
    ('"a string"', "application/json", 422),
    ("name=form", "application/x-www-form-urlencoded", 415),
    ('{"name": "x"}', "text/plain", 415),
    ('{"name": "x"}', None, 415),
])
def test_bad_bodies_are_problems_and_nothing_is_stored(http, manager, data, content_type, status):
    headers = manager.headers()
    if content_type:
        headers["Content-Type"] = content_type
    response = http.post(f"{API}/clients", data=data, headers=headers)
    body = assert_problem(response, status)
    assert body["detail"]
    if status == 415:
        assert response.headers["Accept-Post"] == "application/json"
    assert len(clients_of(manager.org_id)) == 1


def test_json_with_a_charset_or_a_json_suffix_type_is_accepted(http, manager):
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = http.post(f"{API}/clients", data=json.dumps({"name": "Typed"}),
                             headers=manager.headers(**{"Content-Type": content_type}))
        assert response.status_code == 201


def test_body_over_the_size_limit_is_413(http, manager):
    big = json.dumps({"name": "x", "description": "d" * (1024 * 1024)})
    response = http.post(f"{API}/clients", data=big, headers=manager.headers(**{"Content-Type": "application/json"}))
    assert_problem(response, 413)


def test_unknown_routes_and_methods_are_problems(http, manager):
    assert_problem(http.get(f"{API}/nothing-here", headers=manager.headers()), 404)
    assert_problem(http.get("/api/v2/clients", headers=manager.headers()), 404)
    wrong = http.put(f"{API}/clients", headers=manager.headers())
    assert_problem(wrong, 405)
    assert set(wrong.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert_problem(http.post(f"{API}/clients/{manager.tenant.client_id}", headers=manager.headers()), 405)


@pytest.mark.parametrize("client_id", ["nope", "x" * 300, "a\x00b", "%00"])
def test_odd_identifiers_are_404(http, manager, client_id):
    assert_problem(http.get(f"{API}/clients/{client_id}", headers=manager.headers()), 404)


# --- icons ------------------------------------------------------------------------------------

def icon_url(client_id: str) -> str:
    return f"{API}/clients/{client_id}/icon"


def test_icon_raw_upload_download_delete(http, manager):
    h = manager.headers()
    cid = manager.tenant.client_id
    assert_problem(http.get(icon_url(cid), headers=h), 404)
    put = http.put(icon_url(cid), data=png_bytes((600, 300), "JPEG"), headers={**h, "Content-Type": "image/jpeg"})
    assert put.status_code == 200
    assert put.get_json()["icon_url"] == icon_url(cid)
    got = http.get(icon_url(cid), headers=h)
    assert got.status_code == 200 and got.mimetype == "image/png"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.data.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    assert max(Image.open(io.BytesIO(got.data)).size) <= 256  # re-encoded and bounded by the service
    assert http.delete(icon_url(cid), headers=h).status_code == 204
    assert_problem(http.get(icon_url(cid), headers=h), 404)
    assert_problem(http.delete(icon_url(cid), headers=h), 404)
    assert http.get(f"{API}/clients/{cid}", headers=h).get_json()["icon_url"] is None


def test_icon_multipart_upload(http, manager):
    response = http.put(icon_url(manager.tenant.client_id), headers=manager.headers(),
                        data={"icon": (io.BytesIO(png_bytes()), "icon.png")}, content_type="multipart/form-data")
    assert response.status_code == 200
    assert db.session.get(Client, manager.tenant.client_id).icon.startswith(b"\x89PNG")


def test_icon_multipart_without_the_field_is_400(http, manager):
    response = http.put(icon_url(manager.tenant.client_id), headers=manager.headers(),
                        data={"picture": (io.BytesIO(png_bytes()), "icon.png")}, content_type="multipart/form-data")
    assert "icon" in assert_problem(response, 400)["detail"]


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.mark.parametrize("data,content_type,status", [
    (SVG, "image/png", 400),
    (SVG, "image/svg+xml", 415),
    (b"", "image/png", 400),
    (png_bytes()[:40], "image/png", 400),
    (b"GIF89a" + b"\x00" * 50, "image/gif", 400),
    (b"\x89PNG" + b"\x00" * (300 * 1024), "image/png", 400),
    (b"\x00" * (1024 * 1024 + 1), "image/png", 413),
    (png_bytes(), "application/json", 415),
])
def test_bad_icons_are_refused_and_nothing_is_stored(http, manager, data, content_type, status):
    response = http.put(icon_url(manager.tenant.client_id), data=data,
                        headers=manager.headers(**{"Content-Type": content_type}))
    body = assert_problem(response, status)
    if status == 400 and data:
        assert body.get("field") == "icon"
    db.session.expire_all()
    assert db.session.get(Client, manager.tenant.client_id).icon is None
