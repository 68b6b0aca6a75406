"""Errors under /console are pages of the console (its stylesheet, its navigation for a signed-in admin, a
way back, the console's security headers, never a traceback), also for paths no console route matches;
the management API keeps answering problem+json and the OAuth endpoints RFC 6749 JSON. /favicon.ico
answers with the console's icon."""
from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy.exc import OperationalError

from authserver import outages
from authserver.console import views as console_views

STYLESHEET = 'href="/console/static/console.css"'


def html_of(response) -> str:
    assert response.mimetype == "text/html", response.mimetype
    return response.get_data(as_text=True)


def assert_console_page(response, status: int) -> str:
    assert response.status_code == status
    html = html_of(response)
    assert STYLESHEET in html, "not rendered with the console's base template"
    assert 'class="topbar"' in html and 'class="card form-card"' in html
    assert "Traceback" not in html and "werkzeug" not in html.lower()
    assert response.headers["Content-Security-Policy"] == console_views.CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    return html


def test_an_unknown_console_page_is_a_styled_404_that_leads_to_sign_in(http):
    response = http.get("/console/no-such-page")
    html = assert_console_page(response, 404)
    assert "<title>Not Found · authserver</title>" in html
    assert "There is no such page." in html
    assert 'href="/console/sign-in"' in html and "Go to sign in" in html
    assert 'aria-label="Main"' not in html  # no navigation for a visitor


def test_a_signed_in_admin_gets_the_404_with_the_consoles_navigation(console, console_admin):
    response = console.get("/console/apps/" + "f" * 32 + "/no-such-tab")
    html = assert_console_page(response, 404)
    assert console_admin.email in html
    assert 'aria-label="Main"' in html and 'href="/console/apis"' in html
    assert 'href="/console/apps"' in html and "Back to your apps" in html


def test_a_wrong_method_is_a_styled_405_with_allow(http, console):
    for client in (http, console.http):  # a visitor, and a signed-in admin
        response = client.delete("/console/apps")
        html = assert_console_page(response, 405)
        assert "This page does not accept that kind of request." in html
        assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}


@pytest.fixture
def app_log():
    """What the application logs (its logger does not propagate to pytest's capture)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("authserver")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_a_failing_console_page_is_a_styled_500_without_a_traceback(console, monkeypatch, app_log):
    detail = "the apps list broke at /srv/internal/path"

    def broken(*args, **kwargs):
        raise RuntimeError(detail)

    monkeypatch.setattr(console_views, "list_clients", broken)  # the apps page's one service call fails
    response = console.get("/console/apps", headers={"X-Request-Id": "req-console-500"})
    html = assert_console_page(response, 500)
    assert "Something went wrong" in html
    assert detail not in html and "RuntimeError" not in html
    assert 'href="/console/"' in html and "Back to the console" in html
    # The page names the request, and the log line with the exception carries the same id.
    assert response.headers["X-Request-Id"] == "req-console-500"
    assert re.search(r"Request ID <code>req-console-500</code>", html)
    failures = [r for r in app_log if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(failures) == 1 and failures[0].request_id == "req-console-500"

    monkeypatch.undo()  # the console works again: the error left nothing behind
    assert console.get("/console/apps").status_code == 200


def test_a_database_outage_on_a_console_page_is_a_styled_503_with_retry_after(console, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(console_views, "list_clients", unreachable)
    monkeypatch.setattr(outages, "_last_logged", {})  # this outage's log line leaves no trace for other tests
    response = console.get("/console/apps")
    html = assert_console_page(response, 503)
    assert "Temporarily unavailable" in html and "The database is unavailable" in html
    assert response.headers["Retry-After"].isdigit()
    assert "connection refused" not in html


def test_the_management_api_and_oauth_endpoints_keep_their_json_errors(http):
    missing = http.get("/api/v1/no-such-resource")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert missing.get_json()["status"] == 404

    wrong_method = http.delete("/api/v1/openapi.json")
    assert wrong_method.status_code == 405
    assert wrong_method.mimetype == "application/problem+json"
    assert "GET" in wrong_method.headers["Allow"]

    oauth = http.get("/oauth/token")
    assert oauth.status_code == 405
    assert oauth.mimetype == "application/json"
    assert oauth.get_json()["error"] == "invalid_request"
    assert http.get("/oauth/no-such-endpoint").get_json()["error"] == "invalid_request"


def test_favicon_is_served_and_linked_from_the_console(http):
    icon = http.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.mimetype == "image/svg+xml"
    assert "max-age=" in icon.headers["Cache-Control"]
    root = ET.fromstring(icon.get_data())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"

    sign_in = http.get("/console/sign-in").get_data(as_text=True)
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', sign_in)
    assert link, "the console's pages do not link the icon"
    linked = http.get(link.group(1))
    assert linked.status_code == 200 and linked.mimetype == "image/svg+xml"
    assert linked.get_data() == icon.get_data()
