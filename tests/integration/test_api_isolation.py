"""Nothing crosses organizations: every operation on another organization's object answers 404 and
changes nothing; lists show only the caller's own objects."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.api.routing import OPERATIONS
from authserver.extensions import db
from authserver.models import Account, AuditEvent, Client, ClientKey, ClientSecret
from authserver.services.clients import update_client

from ..conftest import public_pem
from .api_support import API, assert_problem, manager, other_manager, png_bytes  # noqa: F401

OBJECT_OPERATIONS = [op for op in OPERATIONS if op.path_parameters]


def valid_request(op) -> dict:
    """Arguments of a request that would succeed on the caller's own object."""
    if op.endpoint == "update_client":
        return {"json": {"name": "Hijacked", "scope": "everything"}}
    if op.endpoint == "put_client_icon":
        return {"data": png_bytes(), "content_type": "image/png"}
    if op.endpoint == "create_key":
        return {"json": {"key": public_pem(ec.generate_private_key(ec.SECP256R1())).decode(), "kid": "planted"}}
    if op.endpoint == "update_account":
        return {"json": {"disabled": True}}
    return {}


def snapshot(org_id: str) -> dict:
    db.session.expire_all()
    clients = db.session.query(Client).filter_by(org_id=org_id).all()
    client_ids = [c.client_id for c in clients]
    return {
        "clients": [(c.client_id, c.name, c.scope, c.icon) for c in clients],
        "secrets": sorted(s.secret_id for s in db.session.query(ClientSecret).filter(ClientSecret.client_id.in_(client_ids))),
        "keys": sorted(k.kid for k in db.session.query(ClientKey).filter(ClientKey.client_id.in_(client_ids))),
        "accounts": sorted((a.account_id, a.disabled_at) for a in db.session.query(Account).filter_by(org_id=org_id)),
        "events": db.session.query(AuditEvent).filter_by(org_id=org_id).count(),
    }


def test_every_object_operation_is_covered():
    assert {op.endpoint for op in OBJECT_OPERATIONS} == {
        "get_client", "update_client", "delete_client", "get_client_icon", "put_client_icon", "delete_client_icon",
        "list_secrets", "create_secret", "get_secret", "delete_secret", "list_keys", "create_key", "get_key",
        "delete_key", "get_account", "update_account",
    }


@pytest.mark.parametrize("op", OBJECT_OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_another_organizations_objects_are_404(http, manager, other_manager, op):
    victim = other_manager.tenant
    update_client(victim.client_id, icon=png_bytes())  # so the icon routes have something to find
    ids = {"client_id": victim.client_id, "secret_id": victim.secret_id, "kid": victim.kid,
           "account_id": victim.account_id}
    before = snapshot(victim.org_id)
    path = API + op.path.format(**{name: ids[name] for name in op.path_parameters})
    response = http.open(path, method=op.method, headers=manager.headers(), **valid_request(op))
    body = assert_problem(response, 404)
    assert body["type"].endswith("#problem-not-found")
    assert snapshot(victim.org_id) == before
    # The answer is the one an id that exists nowhere gets: it does not tell the object exists.
    nowhere = {name: ("0" * 32 if name == "client_id" else "missing") for name in op.path_parameters}
    missing = http.open(API + op.path.format(**nowhere), method=op.method, headers=manager.headers(),
                        **valid_request(op))
    assert assert_problem(missing, 404) == body


@pytest.mark.parametrize("op", OBJECT_OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_the_same_request_on_ones_own_object_is_not_404(http, manager, op):
    """The control of the test above: what answers 404 across organizations works at home."""
    own = manager.tenant
    update_client(own.client_id, icon=png_bytes())
    ids = {"client_id": own.client_id, "secret_id": own.secret_id, "kid": own.kid, "account_id": own.account_id}
    path = API + op.path.format(**{name: ids[name] for name in op.path_parameters})
    response = http.open(path, method=op.method, headers=manager.headers(), **valid_request(op))
    assert 200 <= response.status_code < 300, (op.endpoint, response.status_code, response.get_data(as_text=True))


def test_lists_show_only_the_callers_objects(http, manager, other_manager):
    for path, key, own in [("/clients", "client_id", manager.tenant.client_id),
                           ("/accounts", "account_id", manager.tenant.account_id)]:
        mine = {item[key] for item in http.get(API + path, headers=manager.headers()).get_json()["items"]}
        theirs = {item[key] for item in http.get(API + path, headers=other_manager.headers()).get_json()["items"]}
        assert own in mine and own not in theirs and mine.isdisjoint(theirs)


def test_secrets_and_keys_of_another_org_cannot_be_reached_through_ones_own_client(http, manager, other_manager):
    own, victim = manager.tenant.client_id, other_manager.tenant
    assert_problem(http.get(f"{API}/clients/{own}/secrets/{victim.secret_id}", headers=manager.headers()), 404)
    assert_problem(http.delete(f"{API}/clients/{own}/secrets/{victim.secret_id}", headers=manager.headers()), 404)
    assert db.session.get(ClientSecret, victim.secret_id) is not None


def test_a_user_of_one_org_cannot_be_a_subject_for_another(http, manager, other_manager):
    # The other org's admin, asserted by this org's client, gets no token at all (SPEC §4: sub of the
    # client's organization), so it cannot reach this org's API either.
    response = http.post("/oauth/token", headers=manager.tenant.auth(),
                         data=manager.tenant.token_form(manager.tenant.assertion(sub=other_manager.user_id),
                                                        scope="manage"))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
