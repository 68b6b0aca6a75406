"""Issue 14's expiry notice: the purger writes one `secret.expiring` audit event per secret when the
secret comes within EXPIRY_WARNING_DAYS of its expiry (once, however often it runs, however many
purgers run, across restarts: the row records it), and /metrics carries a gauge of the secrets in
that window. Time is moved with the server's clock."""
from __future__ import annotations

import json
import re
import threading

from sqlalchemy import select

from authserver import clock
from authserver.cli import purge_once
from authserver.extensions import db
from authserver.models import AuditEvent, ClientSecret
from authserver.services.client_secrets import (
    EXPIRING_EVENT,
    EXPIRY_NOTIFIER,
    EXPIRY_WARNING_DAYS,
    add_secret,
    note_expiring_secrets,
)

from ..conftest import make_tenant
from .test_secret_expiry import Cli, at

DAY = 86400
GAUGE = re.compile(r"^authserver_client_secrets_expiring (\S+)$", re.MULTILINE)


def expiring_events() -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == EXPIRING_EVENT)
                                   .order_by(AuditEvent.id)))


def gauge(http) -> float:
    response = http.get("/metrics")
    assert response.status_code == 200
    (value,) = GAUGE.findall(response.get_data(as_text=True))
    return float(value)


def test_one_event_per_secret_when_it_enters_the_window_and_a_gauge_of_the_window(app, http, tenant):
    start = clock.now()
    soon = add_secret(tenant.client_id, expires_in_days=20, label="rotating soon")
    later = add_secret(tenant.client_id, expires_in_days=40)
    leaked = add_secret(tenant.client_id, expires_in_days=20)
    db.session.execute(ClientSecret.__table__.update().where(ClientSecret.secret_id == leaked.secret_id)
                       .values(leaked_at=start))
    db.session.commit()
    add_secret(tenant.client_id)  # never expires

    assert note_expiring_secrets() == [] and expiring_events() == [] and gauge(http) == 0

    # One second before `soon` is 14 days from expiry: still outside the window.
    at(soon.expires_at - EXPIRY_WARNING_DAYS * DAY)
    assert purge_once()["expiring_secrets_noticed"] == 0 and gauge(http) == 0
    at(soon.expires_at - EXPIRY_WARNING_DAYS * DAY + 1)
    assert purge_once()["expiring_secrets_noticed"] == 1
    (event,) = expiring_events()
    assert (event.org_id, event.object_type, event.object_id, event.actor) == (
        tenant.org_id, "client_secret", soon.secret_id, EXPIRY_NOTIFIER.actor_id)
    details = json.loads(event.details)
    assert details == {"client_id": tenant.client_id, "expires_at": clock.isoformat(soon.expires_at),
                       "days_left": EXPIRY_WARNING_DAYS, "label": "rotating soon"}
    assert db.session.get(ClientSecret, soon.secret_id).expiry_noticed_at == clock.now()
    assert gauge(http) == 1  # the leaked secret is disabled already: no longer counted as expiring

    # Running again (a restart, the next round) writes nothing more.
    clock.shift(DAY)
    assert purge_once()["expiring_secrets_noticed"] == 0 and len(expiring_events()) == 1

    # `later` enters the window 20 days on; by then `soon` has expired and leaves the gauge.
    at(later.expires_at - EXPIRY_WARNING_DAYS * DAY + 60)
    assert gauge(http) == 1
    assert note_expiring_secrets() == [later.secret_id]
    assert [e.object_id for e in expiring_events()] == [soon.secret_id, later.secret_id]
    at(later.expires_at)
    assert gauge(http) == 0 and note_expiring_secrets() == []
    assert db.session.get(ClientSecret, leaked.secret_id).expiry_noticed_at is None


def test_a_secret_added_inside_the_window_is_noticed_once_and_other_organizations_get_their_own(app, tenant):
    other = make_tenant("Other org")
    mine = add_secret(tenant.client_id, expires_in_days=3)
    theirs = add_secret(other.client_id, expires_in_days=10)
    noticed = note_expiring_secrets()
    assert sorted(noticed) == sorted([mine.secret_id, theirs.secret_id])
    by_secret = {e.object_id: e.org_id for e in expiring_events()}
    assert by_secret == {mine.secret_id: tenant.org_id, theirs.secret_id: other.org_id}
    assert note_expiring_secrets() == []


def test_purgers_racing_write_each_event_once(app, tenant):
    new = [add_secret(tenant.client_id, expires_in_days=5) for _ in range(4)]
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def purger():
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                results.append(note_expiring_secrets())
            except BaseException as exc:  # reported below, with the others' results
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=purger) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert sorted(sid for result in results for sid in result) == sorted(s.secret_id for s in new)
    assert sorted(e.object_id for e in expiring_events()) == sorted(s.secret_id for s in new)


def test_the_purge_command_writes_the_notices(app, tenant):
    new = add_secret(tenant.client_id, expires_in_days=7)
    result = Cli(app).json("purge")
    assert result["expiring_secrets_noticed"] == 1
    assert [e.object_id for e in expiring_events()] == [new.secret_id]
    assert Cli(app).json("purge")["expiring_secrets_noticed"] == 0
