"""The audit log's filters and paging, the same through GET /audit-events and the console's audit
page (one service query): event type, actor, object or app, date range; newest first with older and
newer cursors and a page size; bad values are a clear error, never a 500; sign-ins show with a label."""
from __future__ import annotations

import json

from sqlalchemy import select

from authserver import clock
from authserver.extensions import db
from authserver.models import AuditEvent
from authserver.services.audit import record_event
from authserver.services.common import Actor

from ..console_support import signed_in
from .api_support import API, assert_problem
from .helpers import case

DAY = 86400
BASE = 1_900_000_000  # 2030-03-17: events are dated by moving the clock


def seed(org_id: str) -> dict[str, list[int]]:
    """30 events over three days by two actors about two clients; returns the ids by kind."""
    ids: dict[str, list[int]] = {"secret": [], "key": [], "day2": []}
    for i in range(30):
        clock.reset()
        clock.shift(BASE + (i // 10) * DAY + i - clock.now())
        action, kind = ("secret.created", "secret") if i % 2 == 0 else ("key.created", "key")
        client = "client-a" if i % 3 == 0 else "client-b"
        record_event(Actor("alice" if i % 5 else "bob", "198.51.100.1"), org_id, action,
                     "client_secret" if kind == "secret" else "client_key", f"obj-{i:02d}", client_id=client)
        db.session.flush()
    db.session.commit()
    clock.reset()
    rows = db.session.scalars(select(AuditEvent).where(AuditEvent.object_id.like("obj-%"))
                              .order_by(AuditEvent.id)).all()
    for row in rows:
        ids["secret" if row.action == "secret.created" else "key"].append(row.id)
        if BASE + DAY <= row.created_at < BASE + 2 * DAY:
            ids["day2"].append(row.id)
    ids["all"] = [row.id for row in rows]
    ids["client-a"] = [row.id for row in rows if json.loads(row.details)["client_id"] == "client-a"]
    ids["bob"] = [row.id for row in rows if row.actor == "bob"]
    return ids


def api_ids(http, manager, query: str) -> list[int]:
    response = http.get(f"{API}/audit-events?{query}", headers=manager.headers())
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return [e["id"] for e in response.get_json()["items"] if e["object_id"].startswith("obj-")]


def test_api_filters_each_alone_and_together(http, manager):
    ids = seed(manager.org_id)
    newest_first = lambda wanted: sorted(wanted, reverse=True)  # noqa: E731
    assert api_ids(http, manager, "action=secret.created&limit=500") == newest_first(ids["secret"])
    assert api_ids(http, manager, "actor=bob&limit=500") == newest_first(ids["bob"])
    assert api_ids(http, manager, "target=client-a&limit=500") == newest_first(ids["client-a"])
    assert api_ids(http, manager, "target=obj-07") == [ids["all"][7]]
    assert api_ids(http, manager, "since=2030-03-18&until=2030-03-18&limit=500") == newest_first(ids["day2"])
    start = clock.isoformat(BASE + DAY + 12)
    assert api_ids(http, manager, f"since={start}&until=2030-03-18") == newest_first(
        [i for i in ids["day2"] if i >= ids["all"][12]])
    both = set(ids["secret"]) & set(ids["client-a"]) & set(ids["day2"])
    assert api_ids(http, manager, "action=secret.created&target=client-a&since=2030-03-18&until=2030-03-18"
                   ) == newest_first(both)
    assert api_ids(http, manager, "action=no.such") == []
    event = http.get(f"{API}/audit-events?target=obj-00", headers=manager.headers()).get_json()["items"][0]
    assert event["action_label"] == "Secret added"


def test_api_pages_older_and_newer_with_cursors(http, manager):
    ids = seed(manager.org_id)
    secrets_ = sorted(ids["secret"], reverse=True)  # 15; `since` leaves out the fixture's own secret

    first = http.get(
        f"{API}/audit-events?action=secret.created&since=2030-03-17&limit=6", headers=manager.headers()
    ).get_json()
    assert [e["id"] for e in first["items"]] == secrets_[:6]
    assert first["next_after"] is None and first["next_before"] == secrets_[5]
    second = http.get(
        f"{API}/audit-events?action=secret.created&since=2030-03-17&limit=6&before={first['next_before']}",
        headers=manager.headers(),
    ).get_json()
    assert [e["id"] for e in second["items"]] == secrets_[6:12]
    assert second["next_after"] == secrets_[6] and second["next_before"] == secrets_[11]
    third = http.get(
        f"{API}/audit-events?action=secret.created&since=2030-03-17&limit=6&before={second['next_before']}",
        headers=manager.headers(),
    ).get_json()
    assert [e["id"] for e in third["items"]] == secrets_[12:] and third["next_before"] is None
    back = http.get(f"{API}/audit-events?action=secret.created&since=2030-03-17&limit=6&after={third['next_after']}",
                    headers=manager.headers()).get_json()
    assert back == second  # newer from the third page is the second page again, still newest first


def test_api_bad_filters_are_clear_errors(http, manager):
    seed(manager.org_id)
    for query, status, needle in [
        ("since=yesterday", 400, "ISO 8601"),
        ("until=2030-13-01", 400, "ISO 8601"),
        ("since=2030-03-18T10:00:00", 400, "time zone"),
        ("since=2030-03-19&until=2030-03-18", 400, "after its end"),
        ("actor=%07bell", 400, "printable"),
        ("before=5&after=3", 400, "not both"),
        ("after=0", 422, "after"),
        ("after=x", 422, "after"),
        ("target=" + "x" * 200, 422, "target"),
    ]:
        with case(query):
            response = http.get(f"{API}/audit-events?{query}", headers=manager.headers())
            assert_problem(response, status)
            assert needle in response.get_data(as_text=True)


def rows_on_page(html: str) -> list[str]:
    return [part.split("</code>", 1)[0] for part in html.split('<code class="mono">obj-')[1:]]


def test_console_filters_and_pages_like_the_api(app, console_admin):
    console = signed_in(app, console_admin)
    ids = seed(console_admin.org_id)
    by_id = {row_id: f"{n:02d}" for n, row_id in enumerate(ids["all"])}
    html = console.get("/console/audit?action=key.created&actor=alice&size=25").get_data(as_text=True)
    wanted = sorted(set(ids["key"]) - set(ids["bob"]), reverse=True)
    assert rows_on_page(html) == [by_id[i] for i in wanted]
    assert 'value="key.created" selected' in html and "Public key added" in html

    page1 = console.get("/console/audit?target=client-a&size=25").get_data(as_text=True)
    assert rows_on_page(page1) == [by_id[i] for i in sorted(ids["client-a"], reverse=True)]  # 10 fit in 25
    assert "Older events" not in page1

    html = console.get("/console/audit?since=2030-03-18&until=2030-03-18&size=25").get_data(as_text=True)
    assert rows_on_page(html) == [by_id[i] for i in sorted(ids["day2"], reverse=True)]

    # Paging keeps the filters: 15 secret events at 25 a page need the older link only past 25, so
    # use the unfiltered log (30 + the organization's own events) with the smallest size.
    first = console.get("/console/audit?action=secret.created&size=25").get_data(as_text=True)
    assert len(rows_on_page(first)) == 15 and "Older events" not in first
    everything = console.get("/console/audit?size=25").get_data(as_text=True)
    assert "Older events" in everything and "Newer events" not in everything
    older_link = everything.split('rel="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "size=25" in older_link
    older = console.get(older_link).get_data(as_text=True)
    assert "Newer events" in older and "Newest events" in older
    newer_link = older.split('rel="prev" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert rows_on_page(console.get(newer_link).get_data(as_text=True)) == rows_on_page(everything)


def test_console_bad_filters_show_the_reason_with_status_400(app, console_admin):
    console = signed_in(app, console_admin)
    for query, needle in [("since=yesterday", "ISO 8601"), ("since=2030-03-19&until=2030-03-18", "after its end"),
                          ("size=7", "one of 25, 50, 100, 200"), ("before=abc", "whole number"),
                          ("before=3&after=2", "not both"), ("target=%00", "printable")]:
        with case(query):
            response = console.get(f"/console/audit?{query}")
            assert response.status_code == 400
            assert needle in response.get_data(as_text=True)


def test_sign_ins_show_with_a_readable_label(app, console_admin):
    signed_in(app, console_admin)  # signs in through the form: audited
    html = signed_in(app, console_admin).get("/console/audit?action=console.signed_in").get_data(as_text=True)
    assert "Signed in to the console" in html and "console.signed_in" in html
    assert console_admin.email in html  # the actor, as a person reads it
