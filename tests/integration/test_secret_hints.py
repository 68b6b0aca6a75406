"""Secrets you can tell apart without seeing them: each new secret keeps its last four characters as
its hint (checksum characters of the scannable format), stored as such and shown by the CLI
(`secret add`, `secret list`, `--json` `hint`), the management API (`hint`) and the console (the
secret list as `…AbCd`, the delete dialog). A secret made before hints were kept has none (NULL),
shown as null in JSON and "hint unknown" for people. Never more than four characters of a secret."""
from __future__ import annotations

import re

import pytest
from flask_migrate import upgrade
from sqlalchemy import inspect, text, update

from authserver import create_app
from authserver.config import MIGRATIONS_DIR
from authserver.crypto.client_secrets import (
    HINT_LENGTH,
    RANDOM_LENGTH,
    SECRET_PREFIX,
    generate_client_secret,
    secret_checksum,
    secret_hint,
)
from authserver.extensions import db
from authserver.models import ClientSecret
from authserver.services.client_secrets import HINT_UNKNOWN

from .api_support import API
from .helpers import case
from .test_migrations import empty_database  # noqa: F401  (fixture)
from .test_secret_expiry import Cli, page_text, secrets_section

SECRET = re.compile(re.escape(SECRET_PREFIX) + r"[0-9A-Za-z]{49}")


def stored(secret_id: str) -> ClientSecret:
    db.session.rollback()  # what the database holds now, not what this session remembers
    row = db.session.get(ClientSecret, secret_id)
    assert row is not None, secret_id
    return row


def forget_hint(secret_id: str) -> None:
    """The row as a secret made before migration 0011 has it: no hint."""
    db.session.execute(update(ClientSecret).where(ClientSecret.secret_id == secret_id).values(hint=None))
    db.session.commit()


def test_the_hint_is_the_last_four_checksum_characters_and_only_of_a_checksummed_secret():
    assert HINT_LENGTH == 4
    for _ in range(50):
        secret = generate_client_secret()
        random_part = secret[len(SECRET_PREFIX):len(SECRET_PREFIX) + RANDOM_LENGTH]
        assert secret_hint(secret) == secret[-4:] == secret_checksum(random_part)[-4:]
    body = generate_client_secret()[len(SECRET_PREFIX):-6]
    for refused in ("as_legacy-client-secret-0123456789abcdef", SECRET_PREFIX + body + "000000", ""):
        with case(refused), pytest.raises(ValueError):
            secret_hint(refused)


def test_cli_shows_the_hint_at_creation_and_in_listings_and_stores_it(app, tenant):
    cli = Cli(app)
    added = cli.json("secret", "add", tenant.client_id, "--label", "billing")
    secret = added["client_secret"]
    assert added["hint"] == secret[-4:] and len(added["hint"]) == 4
    assert stored(added["secret_id"]).hint == secret[-4:]

    human = cli.run("secret", "add", tenant.client_id)
    assert human.exit_code == 0, human.stderr[-300:]
    (shown,) = SECRET.findall(human.stdout)
    (line,) = [ln for ln in human.stdout.splitlines() if ln.startswith("hint:")]
    assert line == f"hint:          …{shown[-4:]}"
    (row,) = [r for r in db.session.scalars(db.select(ClientSecret).where(ClientSecret.client_id == tenant.client_id))
              if r.hint == shown[-4:] and r.secret_id not in (added["secret_id"], tenant.secret_id)]

    forget_hint(tenant.secret_id)
    listed = {item["secret_id"]: item for item in cli.json("secret", "list", tenant.client_id)}
    assert listed[added["secret_id"]]["hint"] == secret[-4:]
    assert listed[row.secret_id]["hint"] == shown[-4:]
    assert listed[tenant.secret_id]["hint"] is None and stored(tenant.secret_id).hint is None
    text_list = cli.run("secret", "list", tenant.client_id).stdout
    assert f'{added["secret_id"]}  …{secret[-4:]}  "billing"  created ' in text_list
    assert f"{row.secret_id}  …{shown[-4:]}  created " in text_list
    assert f"{tenant.secret_id}  {HINT_UNKNOWN}  created " in text_list
    for whole in (secret, shown, tenant.client_secret, secret[-5:], shown[-5:]):
        assert whole not in text_list


def test_api_returns_the_hint_stores_it_and_documents_it(http, manager):
    cid, h = manager.tenant.client_id, manager.headers()
    url = f"{API}/clients/{cid}/secrets"
    created = http.post(url, json={"label": "eu"}, headers=h)
    assert created.status_code == 201
    body = created.get_json()
    secret = body["client_secret"]
    assert body["hint"] == secret[-4:] and len(body["hint"]) == 4
    assert stored(body["secret_id"]).hint == secret[-4:]

    one = http.get(f"{url}/{body['secret_id']}", headers=h)
    assert one.status_code == 200 and one.get_json()["hint"] == secret[-4:]
    forget_hint(manager.tenant.secret_id)
    listing = http.get(url, headers=h)
    items = {item["secret_id"]: item for item in listing.get_json()["items"]}
    assert items[body["secret_id"]]["hint"] == secret[-4:]
    assert items[manager.tenant.secret_id]["hint"] is None
    assert http.get(f"{url}/{manager.tenant.secret_id}", headers=h).get_json()["hint"] is None
    for answer in (one, listing):
        assert secret[-5:] not in answer.get_data(as_text=True)

    schemas = http.get(f"{API}/openapi.json").get_json()["components"]["schemas"]
    for name in ("SecretOut", "NewSecretOut"):
        with case(name):
            assert "hint" in schemas[name]["required"]
            description = schemas[name]["properties"]["hint"]["description"]
            assert "last four characters of the secret, to tell secrets apart; not enough to use it" in description


def test_console_lists_the_hint_and_names_it_in_the_delete_dialog(console, console_admin):
    from authserver.services.clients import register_client

    client = register_client(console_admin.org_id, "Payments")
    page = f"/console/apps/{client.client_id}"
    response = console.submit(page, page + "/secrets", {"label": "worker"})
    assert response.status_code == 200
    panel = page_text(response).split('id="new-secret-panel"', 1)[1].split("</section>", 1)[0]
    secret = SECRET.findall(panel)[0]
    (row,) = db.session.scalars(db.select(ClientSecret).where(ClientSecret.client_id == client.client_id))
    assert stored(row.secret_id).hint == secret[-4:]
    assert f"…{secret[-4:]}" in panel

    html = page_text(console.get(page))
    cell = secrets_section(html).split('secret-cell"', 1)[1].split("</td>", 1)[0]
    assert f"…{secret[-4:]}" in cell and row.secret_id in cell and secret not in html
    message = f"Secret “worker” ({row.secret_id}, …{secret[-4:]}) of “Payments” stops authenticating"
    assert message in html  # the dialog on the page
    confirm = console.get(f"{page}/secrets/{row.secret_id}/delete")
    assert confirm.status_code == 200 and message in page_text(confirm)

    forget_hint(row.secret_id)
    html = page_text(console.get(page))
    cell = secrets_section(html).split('secret-cell"', 1)[1].split("</td>", 1)[0]
    assert HINT_UNKNOWN in cell and f"…{secret[-4:]}" not in html
    unknown = f"Secret “worker” ({row.secret_id}, {HINT_UNKNOWN}) of “Payments”"
    assert unknown in html and unknown in page_text(console.get(f"{page}/secrets/{row.secret_id}/delete"))


def test_upgrade_to_0011_leaves_the_hint_of_existing_secrets_unknown(tmp_path, empty_database):  # noqa: F811
    app = create_app({"instance_path": str(tmp_path / "instance"), "database_url": empty_database})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR), revision="0010")
        assert "hint" not in {c["name"] for c in inspect(db.engine).get_columns("client_secrets")}
        db.session.execute(text("INSERT INTO organizations (org_id, name, created_at) VALUES ('org_old', 'Old', 1)"))
        db.session.execute(text("INSERT INTO clients (client_id, org_id, name, description, keys_version, "
                                "access_version, created_at, updated_at) "
                                "VALUES ('0123456789abcdef0123456789abcdef', 'org_old', 'Old', '', 0, 0, 1, 1)"))
        db.session.execute(text("INSERT INTO client_secrets (secret_id, client_id, secret_hash, created_at, label) "
                                "VALUES ('sec_old', '0123456789abcdef0123456789abcdef', 'hs256v1$00', 1, 'old')"))
        db.session.commit()
        upgrade(directory=str(MIGRATIONS_DIR))
        assert db.session.execute(text("SELECT label, hint FROM client_secrets")).one() == ("old", None)
        db.session.remove()
        db.engine.dispose()
