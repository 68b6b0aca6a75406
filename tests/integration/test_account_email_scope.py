"""Account emails are unique per organization: another organization can neither learn that an address
is used elsewhere (every door answers exactly as for a new address) nor be blocked from using it, and
console sign-in finds the right organization's account by email and password without telling others."""
from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from flask_migrate import upgrade
from sqlalchemy import func, select, text

from authserver import create_app
from authserver.cli import main
from authserver.config import MIGRATIONS_DIR
from authserver.errors import Conflict
from authserver.extensions import db
from authserver.models import Account, AuditEvent
from authserver.services.accounts import authenticate_user, create_account
from authserver.services.organizations import create_organization

from ..conftest import ISSUER, PG_URL
from ..console_support import Console, make_admin
from .api_support import API, make_manager

SHARED = "ada@example.com"
PASSWORD_A = "correct horse battery staple"
PASSWORD_B = "another long enough passphrase"


def _shape(body: dict) -> dict:
    """An account answer without what differs between any two new accounts (ids, names, organization)."""
    varying = ("account_id", "org_id", "created_at", "name")
    return {k: (type(v).__name__ if k in varying else v) for k, v in body.items()}


def _events(org_id: str, action: str) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == org_id,
                                                                                 AuditEvent.action == action))


def test_the_api_answers_an_email_used_elsewhere_exactly_like_a_new_one(http):
    acme, globex = make_manager(http, "Acme"), make_manager(http, "Globex")
    body = {"name": "Ada", "kind": "user", "email": SHARED, "password": PASSWORD_A, "admin": True}
    first = http.post(f"{API}/accounts", json=body, headers=acme.headers())
    elsewhere = http.post(f"{API}/accounts", json=body, headers=globex.headers())
    fresh = http.post(f"{API}/accounts", json={**body, "email": "new@example.com"}, headers=globex.headers())
    assert first.status_code == elsewhere.status_code == fresh.status_code == 201
    assert _shape(elsewhere.get_json()) == _shape(first.get_json()) == {**_shape(fresh.get_json()), "email": SHARED}
    assert sorted(name for name, _ in elsewhere.headers) == sorted(name for name, _ in fresh.headers)
    # Within one organization the address stays unique.
    again = http.post(f"{API}/accounts", json={**body, "name": "Ada again"}, headers=globex.headers())
    assert again.status_code == 409 and again.get_json()["field"] == "email"
    owners = db.session.scalars(select(Account.org_id).where(Account.email == SHARED)).all()
    assert sorted(owners) == sorted([acme.org_id, globex.org_id])


def test_the_cli_answers_an_email_used_elsewhere_exactly_like_a_new_one(app, tmp_path):
    first_org, second_org = create_organization("Acme").org_id, create_organization("Globex").org_id
    db.session.commit()
    runner = CliRunner()
    env = {"AUTHSERVER_INSTANCE_PATH": str(app.extensions["authserver.settings"].instance_path),
           "AUTHSERVER_ISSUER": ISSUER}
    if app.extensions["authserver.settings"].database_url != "":
        env["AUTHSERVER_DATABASE_URL"] = app.extensions["authserver.settings"].database_url

    def create(org_id, email):
        result = runner.invoke(main, ["account", "create", org_id, "Ada", "--kind", "user", "--email", email,
                                      "--admin", "--password-stdin", "--json"], env=env, input=PASSWORD_A + "\n",
                               catch_exceptions=False)
        return result.exit_code, result.stdout

    code_first, out_first = create(first_org, SHARED)
    code_elsewhere, out_elsewhere = create(second_org, SHARED)
    code_fresh, out_fresh = create(second_org, "new@example.com")
    assert code_first == code_elsewhere == code_fresh == 0
    assert _shape(json.loads(out_elsewhere)) == _shape(json.loads(out_fresh)) == _shape(json.loads(out_first))
    code_again, _ = create(second_org, SHARED)
    assert code_again != 0


def test_sign_in_opens_the_organization_whose_account_the_password_opens(app):
    acme = make_admin(org_name="Acme", email=SHARED)
    globex = make_admin(org_name="Globex", email=SHARED)
    account_b = db.session.get(Account, globex.account_id)
    from authserver.services.accounts import set_password

    set_password(account_b.account_id, PASSWORD_B)
    assert authenticate_user(SHARED, PASSWORD_A).org_id == acme.org_id
    assert authenticate_user(SHARED.upper(), PASSWORD_B).org_id == globex.org_id
    assert authenticate_user(SHARED, "a wrong but long password") is None
    for password, org_id in ((PASSWORD_A, acme.org_id), (PASSWORD_B, globex.org_id)):
        browser = Console(app.test_client())
        response = browser.submit("/console/sign-in", "/console/sign-in", {"email": SHARED, "password": password})
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        assert _events(org_id, "console.signed_in") == 1


def test_a_failed_sign_in_is_audited_in_each_organization_with_the_email_and_nowhere_else(app):
    acme = make_admin(org_name="Acme", email=SHARED)
    globex = make_admin(org_name="Globex", email=SHARED)
    bystander = make_admin(org_name="Initech")
    browser = Console(app.test_client())
    response = browser.submit("/console/sign-in", "/console/sign-in", {"email": SHARED, "password": "not it at all"})
    assert response.status_code == 400
    assert _events(acme.org_id, "console.sign_in_failed") == _events(globex.org_id, "console.sign_in_failed") == 1
    assert _events(bystander.org_id, "console.sign_in_failed") == 0


def test_the_same_password_in_two_organizations_opens_the_admin_account(app):
    org_user = create_organization("Acme").org_id
    create_account(org_user, "Ada", "user", email=SHARED, password=PASSWORD_A)  # older, not an admin
    admin = make_admin(org_name="Globex", email=SHARED)
    assert authenticate_user(SHARED, PASSWORD_A).account_id == admin.account_id


def test_a_disabled_account_never_signs_in_even_when_another_organization_shares_the_email(app):
    from authserver.services.accounts import disable_account

    make_admin(org_name="Acme")  # keeps Acme with an admin when Ada's account is disabled
    acme_org = db.session.scalar(select(Account.org_id))
    ada = create_account(acme_org, "Ada", "user", email=SHARED, password=PASSWORD_A, is_admin=True)
    make_admin(org_name="Globex", email=SHARED)
    disable_account(ada.account_id)
    assert authenticate_user(SHARED, PASSWORD_A).org_id != acme_org


@pytest.mark.skipif(not PG_URL, reason="needs AUTHSERVER_TEST_DATABASE_URL (concurrent transactions)")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_concurrent_creations_of_one_email_in_many_organizations_all_succeed(app, backend):
    orgs = [create_organization(f"Org {i}").org_id for i in range(4)]
    db.session.commit()
    results: list = []

    def create(org_id):
        with app.app_context():
            try:
                results.append(create_account(org_id, "Ada", "user", email=SHARED).org_id)
            except Conflict as exc:
                results.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=create, args=(o,)) for o in orgs + orgs[:1]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r for r in results if isinstance(r, str)) == sorted(orgs)
    assert [type(r) for r in results if not isinstance(r, str)] == [Conflict]


def test_upgrading_keeps_accounts_sessions_and_tokens_and_frees_the_email(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    app = create_app({"instance_path": str(tmp_path / "instance"), "database_url": url})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR), revision="0007")
        db.session.execute(text("INSERT INTO organizations (org_id, name, created_at) VALUES ('org_a', 'A', 1), "
                                "('org_b', 'B', 1)"))
        db.session.execute(text("INSERT INTO accounts (account_id, org_id, name, kind, email, is_admin, created_at) "
                                "VALUES ('acc_a', 'org_a', 'Ada', 'user', :email, true, 1)"), {"email": SHARED})
        db.session.execute(text("INSERT INTO console_sessions (session_hash, account_id, org_id, created_at, "
                                "last_seen_at, expires_at, user_agent, ip_address) "
                                "VALUES ('h', 'acc_a', 'org_a', 1, 1, 99999999999, '', '')"))
        db.session.commit()
        upgrade(directory=str(MIGRATIONS_DIR))
        assert db.session.execute(text("SELECT count(*) FROM console_sessions")).scalar_one() == 1
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert db.session.execute(text("PRAGMA foreign_key_check")).all() == []
        create_account("org_b", "Ada", "user", email=SHARED)
        with pytest.raises(Conflict):
            create_account("org_a", "Ada again", "user", email=SHARED)
        db.session.remove()
        db.engine.dispose()


def test_every_sign_in_costs_one_verification_per_candidate_and_the_equaliser_is_made_before_the_lookup(
        app, monkeypatch):
    """An unknown email is verified against the equaliser hash (one argon2id verification, like a known
    email with a wrong password), and that hash, made once per process, is made before the accounts are
    looked up, so its one-time cost does not depend on the email."""
    from authserver.services import accounts

    org = create_organization("Acme")
    create_account(org.org_id, "Ada", "user", email=SHARED, password=PASSWORD_A)
    steps: list[str] = []
    real_lookup = accounts._accounts_with_email
    monkeypatch.setattr(accounts, "_password_hasher", _CountingHasher(accounts._password_hasher, steps))
    monkeypatch.setattr(accounts, "_accounts_with_email", lambda e: steps.append("lookup") or real_lookup(e))
    accounts._dummy_hash.cache_clear()
    monkeypatch.setattr(accounts, "_dummy_hash", _recording(accounts._dummy_hash, steps))

    assert authenticate_user("nobody@example.com", PASSWORD_A) is None
    assert steps == ["equaliser", "lookup", "verify"]
    steps.clear()
    assert authenticate_user(SHARED, "a wrong but long passphrase") is None
    assert steps == ["equaliser", "lookup", "verify"]
    steps.clear()
    assert authenticate_user(SHARED, PASSWORD_A).email == SHARED
    assert steps == ["equaliser", "lookup", "verify"]


class _CountingHasher:
    def __init__(self, hasher, steps: list[str]):
        self._hasher, self._steps = hasher, steps

    def verify(self, stored: str, password: str) -> bool:
        self._steps.append("verify")
        return self._hasher.verify(stored, password)

    def __getattr__(self, name: str):
        return getattr(self._hasher, name)


def _recording(function, steps: list[str]):
    def recorded():
        steps.append("equaliser")
        return function()
    return recorded
