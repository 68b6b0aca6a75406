"""Signing-key lifecycle: `authserver signing-key list | rotate [--now] | withdraw KID`, driven through
the command line, with tokens issued, introspected and revoked over HTTP (Flask test client) on
SQLite and PostgreSQL, and the stored key rows, token records and audit events checked.

Each test starts from one key that signs (the table is restored afterwards, so the PostgreSQL tests
that follow keep their key)."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import delete, insert, select, text, update

from authserver import clock
from authserver.access_tokens import decode_access_token
from authserver.cli import main
from authserver.crypto.jws import Signer
from authserver.crypto.signing import decrypt_private_key
from authserver.extensions import db
from authserver.models import AccessToken, AuditEvent, SigningKey
from authserver.services.signing_keys import rotate_signing_key

from ..conftest import ISSUER, get_token
from .api_support import make_manager
from .helpers import unverified_claims

INACTIVE = {"active": False}


@pytest.fixture(autouse=True)
def still_clock(monkeypatch):
    """The server's clock stands still (the tests move it): states change at exact seconds."""
    frozen = float(int(time.time()))
    monkeypatch.setattr(clock, "time", SimpleNamespace(time=lambda: frozen))


@pytest.fixture
def first_kid(app):
    """One key, signing since now; whatever the table held comes back afterwards."""
    table = SigningKey.__table__
    saved = [dict(row._mapping) for row in db.session.execute(select(table)).all()]
    db.session.execute(delete(table))
    db.session.commit()
    kid = rotate_signing_key().kid
    yield kid
    db.session.rollback()
    db.session.execute(delete(table))
    if saved:
        db.session.execute(insert(table), saved)
    db.session.commit()


@pytest.fixture
def settings(app):
    return app.extensions["authserver.settings"]


@pytest.fixture
def keyring(app):
    return app.extensions["authserver.services"].keyring


class Operator:
    """`authserver signing-key ...` against the test's database, in this process (and its clock)."""

    def __init__(self, app):
        settings = app.extensions["authserver.settings"]
        self.env = {
            "AUTHSERVER_INSTANCE_PATH": str(settings.instance_path),
            "AUTHSERVER_DATABASE_URL": settings.database_url,
            "AUTHSERVER_ISSUER": ISSUER,
        }

    def run(self, *args):
        return CliRunner().invoke(main, ["signing-key", *args], env=self.env, catch_exceptions=False)

    def json(self, *args):
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.stderr[-1000:]
        assert result.stdout.count("\n") == 1, result.stdout
        return json.loads(result.stdout)

    def fails(self, *args, code: int) -> str:
        result = self.run(*args, "--json")
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr[-500:])
        assert result.stdout == ""
        return result.stderr

    def states(self) -> dict:
        return {entry["kid"]: entry["state"] for entry in self.json("list")}


@pytest.fixture
def operator(app, first_kid):
    return Operator(app)


def stored() -> dict:
    """The signing-key rows as stored now."""
    db.session.rollback()
    return {row.kid: row for row in db.session.execute(select(SigningKey.__table__)).all()}


def record(token: str):
    db.session.rollback()
    return db.session.execute(
        select(AccessToken.__table__).where(AccessToken.jti == unverified_claims(token)["jti"])
    ).first()


def events(action: str) -> list[dict]:
    db.session.rollback()
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).scalars()
    return [{"object_id": e.object_id, "actor": e.actor, **json.loads(e.details)} for e in rows]


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def published(http) -> set[str]:
    response = http.get("/oauth/jwks")
    assert response.status_code == 200
    return {key["kid"] for key in response.get_json()["keys"]}


def introspect(http, tenant, token: str) -> dict:
    response = http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth())
    assert response.status_code == 200
    return response.get_json()


def issue(http, tenant) -> str:
    now = clock.now()  # the server's clock, which the tests move
    token = get_token(http, tenant, assertion=tenant.assertion(iat=now, exp=now + 120))["access_token"]
    assert record(token).kid == kid_of(token)  # the record names the key that signed the token
    return token


def let_workers_refresh(settings) -> None:
    clock.shift(settings.signing_key_refresh)


# --- state transitions ------------------------------------------------------------------------

def test_first_key_signs_at_once_and_tokens_record_it(operator, first_kid, http, tenant):
    row = stored()[first_kid]
    assert row.activates_at == row.created_at and row.retired_at is None and row.withdrawn_at is None
    [entry] = operator.json("list")
    assert entry["kid"] == first_kid and entry["state"] == "signing" and entry["alg"] == "RS256"
    assert set(entry) == {"kid", "alg", "created_at", "activates_at", "retired_at", "withdrawn_at", "state"}
    assert entry["created_at"] == entry["activates_at"] == clock.isoformat(row.created_at)
    assert entry["retired_at"] is None and entry["withdrawn_at"] is None
    token = issue(http, tenant)
    assert kid_of(token) == first_kid and published(http) == {first_kid}
    assert introspect(http, tenant, token)["active"] is True


def test_plain_rotation_pending_signing_retired_expired(operator, first_kid, http, tenant, settings):
    old_token = issue(http, tenant)
    rotated = operator.json("rotate")
    assert set(rotated) == {"kid", "alg"}
    new = rotated["kid"]
    rows = stored()
    assert rows[new].activates_at == rows[new].created_at + settings.signing_key_activation_delay
    assert rows[first_kid].retired_at == rows[new].activates_at  # no gap, no overlap
    assert operator.states() == {new: "pending", first_kid: "signing"}
    assert [entry["kid"] for entry in operator.json("list")] == [new, first_kid]  # newest first
    assert published(http) == {first_kid, new}  # the new key is published before it signs
    let_workers_refresh(settings)
    assert kid_of(issue(http, tenant)) == first_kid
    assert events("signing_key.rotated")[-1] == {
        "object_id": new, "actor": "cli", "alg": "RS256", "activates_at": rows[new].activates_at}

    clock.shift(settings.signing_key_activation_delay)
    assert operator.states() == {new: "signing", first_kid: "retired"}
    new_token = issue(http, tenant)
    assert kid_of(new_token) == new
    assert published(http) == {first_kid, new}  # the retired key's tokens still live
    for token in (old_token, new_token):
        assert introspect(http, tenant, token)["active"] is True

    # Published until every token it signed has expired: lifetime, clock skew and refresh after it retired.
    grace = settings.access_token_ttl + settings.clock_skew + settings.signing_key_refresh
    clock.shift(rows[first_kid].retired_at + grace - clock.now() - 1)
    assert operator.states()[first_kid] == "retired" and published(http) == {first_kid, new}
    clock.shift(1)
    assert operator.states() == {new: "signing", first_kid: "expired"}
    assert published(http) == {new}


def test_second_plain_rotation_while_one_is_pending_keeps_the_first_schedule(
    operator, first_kid, http, tenant, settings
):
    """The oldest key stops signing when the first rotation said; the first new key then signs until
    the second one takes over."""
    delay = settings.signing_key_activation_delay
    second = operator.json("rotate")["kid"]
    clock.shift(delay // 2)
    third = operator.json("rotate")["kid"]
    rows = stored()
    assert rows[first_kid].retired_at == rows[second].activates_at  # unchanged by the second rotation
    assert rows[second].retired_at == rows[third].activates_at == rows[third].created_at + delay
    assert operator.states() == {third: "pending", second: "pending", first_kid: "signing"}

    clock.shift(rows[second].activates_at - clock.now() + settings.signing_key_refresh)
    assert operator.states() == {third: "pending", second: "signing", first_kid: "retired"}
    assert kid_of(issue(http, tenant)) == second

    clock.shift(rows[third].activates_at - clock.now() + settings.signing_key_refresh)
    assert operator.states() == {third: "signing", second: "retired", first_kid: "retired"}
    assert kid_of(issue(http, tenant)) == third
    assert published(http) == {first_kid, second, third}


def test_emergency_rotation_after_a_pending_rotation_signs_at_once(operator, first_kid, http, tenant, settings):
    """The defect this guards against: rotate, then rotate with no delay, and the OLDEST key kept signing."""
    assert kid_of(issue(http, tenant)) == first_kid  # this worker caches the signing key
    pending = operator.json("rotate")["kid"]
    clock.shift(5)
    emergency = operator.json("rotate", "--now")["kid"]
    rows = stored()
    now = rows[emergency].created_at
    assert rows[emergency].activates_at == now and rows[emergency].retired_at is None
    assert rows[first_kid].retired_at == now and rows[pending].retired_at == now  # both stop at once
    assert operator.states() == {emergency: "signing", pending: "retired", first_kid: "retired"}
    assert events("signing_key.rotated")[-1] == {
        "object_id": emergency, "actor": "cli", "alg": "RS256", "activates_at": now, "now": True}
    # Every worker re-reads its signing key within the refresh interval.
    let_workers_refresh(settings)
    for _ in range(3):
        assert kid_of(issue(http, tenant)) == emergency
    clock.shift(settings.signing_key_activation_delay)  # the pending key never signs
    assert kid_of(issue(http, tenant)) == emergency
    assert operator.states()[pending] == "retired"


def test_rotate_now_human_output(operator, first_kid):
    result = operator.run("rotate", "--now")
    assert result.exit_code == 0 and "signs now" in result.stdout
    table = operator.run("list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["kid", "alg", "state", "created_at", "activates_at", "retired_at", "withdrawn_at"]
    assert [line.split()[2] for line in lines[1:]] == ["signing", "retired"]
    assert lines[2].split()[0] == first_kid and lines[2].split()[-1] == "-"


# --- withdrawal -------------------------------------------------------------------------------

def test_withdrawn_key_is_unpublished_and_its_tokens_inactive_at_once(
    app, operator, first_kid, http, tenant, settings, keyring
):
    manager = make_manager(http)
    old_token = issue(http, tenant)
    assert introspect(http, tenant, old_token)["active"] is True  # verified and remembered by this worker
    assert http.get("/api/v1/clients", headers=manager.headers()).status_code == 200

    emergency = operator.json("rotate", "--now")["kid"]
    let_workers_refresh(settings)
    new_token = issue(http, tenant)
    assert kid_of(new_token) == emergency
    assert introspect(http, tenant, old_token)["active"] is True  # retired, not withdrawn: still good
    assert keyring.verification_key(first_kid) is not None  # cached in this worker

    withdrawn = operator.json("withdraw", first_kid)
    row = stored()[first_kid]
    assert row.withdrawn_at == clock.now() and row.retired_at is not None
    assert withdrawn["kid"] == first_kid and withdrawn["state"] == "withdrawn"
    assert withdrawn["withdrawn_at"] == clock.isoformat(row.withdrawn_at)
    assert events("signing_key.withdrawn") == [
        {"object_id": first_kid, "actor": "cli", "alg": "RS256", "retired_at": row.retired_at}]

    # At once, with this worker's caches still holding the key and the verified token:
    assert published(http) == {emergency}
    assert introspect(http, tenant, old_token) == INACTIVE
    assert http.get("/api/v1/clients", headers=manager.headers()).status_code == 401
    assert http.post("/oauth/revoke", data={"token": old_token}, headers=tenant.auth()).status_code == 200
    assert introspect(http, tenant, new_token)["active"] is True
    assert operator.states() == {emergency: "signing", first_kid: "withdrawn"}

    # Within the refresh interval the worker forgets the key and what it verified with it.
    let_workers_refresh(settings)
    assert introspect(http, tenant, old_token) == INACTIVE
    assert keyring.verification_key(first_kid) is None
    assert keyring.verified_claims(old_token) is None
    # Final: long after, still unpublished and refused.
    clock.shift(settings.access_token_ttl * 2)
    assert operator.states()[first_kid] == "withdrawn" and first_kid not in published(http)
    operator.fails("withdraw", first_kid, code=4)


def test_a_token_forged_with_a_withdrawn_key_is_inactive(operator, first_kid, http, tenant, settings):
    """Whoever holds the compromised key can sign anything with it, including the jti of a token
    the next key signed: the record's key and the verifying key must agree."""
    private = decrypt_private_key(stored()[first_kid].private_key_encrypted, settings.key_encryption_key)
    forger = Signer("RS256", private, {"kid": first_kid, "typ": "at+jwt"})
    old_token = issue(http, tenant)
    assert introspect(http, tenant, old_token)["active"] is True
    operator.json("rotate", "--now")
    let_workers_refresh(settings)
    new_token = issue(http, tenant)
    copied = forger.sign(unverified_claims(new_token))
    assert introspect(http, tenant, copied) == INACTIVE  # signed by the old key, recorded as the new key's
    operator.json("withdraw", first_kid)
    assert introspect(http, tenant, forger.sign(unverified_claims(old_token))) == INACTIVE
    assert introspect(http, tenant, copied) == INACTIVE
    assert introspect(http, tenant, new_token)["active"] is True


def test_tokens_recorded_without_a_kid_follow_the_key_that_verifies_them(operator, first_kid, http, tenant, settings):
    """Records written before the kid column existed: the key that verified the token decides."""
    token = issue(http, tenant)
    db.session.execute(update(AccessToken).where(AccessToken.jti == unverified_claims(token)["jti"]).values(kid=None))
    db.session.commit()
    assert record(token).kid is None
    assert introspect(http, tenant, token)["active"] is True
    operator.json("rotate", "--now")
    let_workers_refresh(settings)
    assert introspect(http, tenant, token)["active"] is True
    operator.json("withdraw", first_kid)
    assert introspect(http, tenant, token) == INACTIVE


def test_withdrawal_is_refused_while_the_key_signs_or_is_due_to(operator, first_kid, http, tenant):
    def unchanged():
        assert all(row.withdrawn_at is None for row in stored().values())
        assert events("signing_key.withdrawn") == []

    message = operator.fails("withdraw", first_kid, code=4)
    assert "rotate --now" in message
    unchanged()
    pending = operator.json("rotate")["kid"]
    assert "rotate --now" in operator.fails(
        "withdraw", first_kid, code=4
    )  # still signing until the pending key takes over
    assert "rotate --now" in operator.fails("withdraw", pending, code=4)  # due to sign: nothing would sign then
    operator.fails("withdraw", "no-such-kid", code=3)
    unchanged()
    assert kid_of(issue(http, tenant)) == first_kid

    emergency = operator.json("rotate", "--now")["kid"]
    assert "rotate --now" in operator.fails("withdraw", emergency, code=4)
    operator.json("withdraw", pending)  # never signed; stopped being due at the emergency rotation
    operator.json("withdraw", first_kid)
    assert operator.states() == {emergency: "signing", pending: "withdrawn", first_kid: "withdrawn"}
    assert published(http) == {emergency}
    assert [e["object_id"] for e in events("signing_key.withdrawn")] == [pending, first_kid]


def test_kids_that_look_like_options_are_withdrawn(operator, first_kid, http):
    db.session.execute(update(SigningKey).where(SigningKey.kid == first_kid).values(kid="-j" + first_kid[2:]))
    db.session.commit()
    dashed = "-j" + first_kid[2:]
    operator.json("rotate", "--now")
    assert operator.json("withdraw", dashed)["state"] == "withdrawn"
    assert dashed not in published(http)


def test_withdrawing_a_key_that_just_stopped_signing_warns(operator, first_kid):
    operator.json("rotate", "--now")
    result = operator.run("withdraw", first_kid, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["state"] == "withdrawn"
    assert "warning" in result.stderr and "every 10 s" in result.stderr


def test_a_retired_key_verifies_only_tokens_it_could_have_signed(operator, first_kid, http, tenant, settings, keyring):
    private = decrypt_private_key(stored()[first_kid].private_key_encrypted, settings.key_encryption_key)
    forger = Signer("RS256", private, {"kid": first_kid, "typ": "at+jwt"})
    assert keyring.verification_key(first_kid)[2] is None  # cached while it signs
    operator.json("rotate", "--now")
    retired_at = stored()[first_kid].retired_at
    let_workers_refresh(settings)  # the worker re-reads the retirement of the keys it caches
    assert keyring.verification_key(first_kid)[2] == retired_at
    grace = settings.access_token_ttl + settings.clock_skew + settings.signing_key_refresh
    claims = unverified_claims(issue(http, tenant))
    assert decode_access_token(forger.sign({**claims, "exp": retired_at + grace}), keyring, ISSUER) is not None
    assert decode_access_token(forger.sign({**claims, "exp": retired_at + grace + 1}), keyring, ISSUER) is None


def test_rotation_and_withdrawal_audit_is_not_in_any_organization(operator, first_kid, http):
    operator.json("rotate", "--now")
    operator.json("withdraw", first_kid)
    db.session.rollback()
    orgs = (
        db.session.execute(text("SELECT DISTINCT org_id FROM audit_events WHERE object_type = 'signing_key'"))
        .scalars()
        .all()
    )
    assert orgs == [None]
