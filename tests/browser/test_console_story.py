"""The seed story in a real browser (Debian's Chromium, headless, driven by Playwright): sign in,
register an app with an icon, add a key, give it API access, add a secret, read the secret once,
reload and see it gone, get a token with it, delete it with the trash can, and see the next token
request refused.

A screenshot of each page goes to test-artifacts/screenshots/; the app details page is also copied to
docs/screenshots/app-details.png, which the README shows."""
from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image, ImageDraw
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from authserver.extensions import db

from ..conftest import JWT_BEARER, make_app, public_pem
from ..console_support import make_admin

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOC_SCREENSHOT = ROOT / "docs" / "screenshots" / "app-details.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# The longest any single browser step may take. Generous: a full-page screenshot on two cores shared with the
# rest of the suite (live servers, the other worker) has taken over 10 s; a step that truly hangs still fails.
WAIT_MS = 30_000
HTTP_TIMEOUT = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(tmp_path, sqlite_template):
    """The app on a real HTTP server in a thread; the issuer is its own URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    app = make_app(tmp_path, sqlite_template, issuer=base_url)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console-live-server", daemon=True)
    thread.start()
    try:
        yield app, base_url
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


def story_icon(path: Path) -> Path:
    """A small, recognisable app icon."""
    image = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, 255, 255), radius=56, fill=(16, 133, 110))
    draw.rounded_rectangle((56, 78, 200, 178), radius=18, fill=(255, 255, 255))
    draw.rectangle((56, 102, 200, 124), fill=(16, 133, 110))
    draw.rounded_rectangle((76, 142, 124, 158), radius=6, fill=(16, 133, 110))
    image.save(path, format="PNG")
    return path


# Every control has a name people and screen readers can use; no clickable non-buttons.
ACCESSIBILITY_PROBLEMS = """() => {
  const problems = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), textarea, select')) {
    if (!el.labels.length && !el.getAttribute('aria-label')) problems.push('unlabelled ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    const name = (el.getAttribute('aria-label') || el.textContent || '').trim();
    if (!name) problems.push('nameless ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('[onclick], a[href="#"], [tabindex]:not([tabindex="-1"])')) {
    problems.push('script-only control ' + el.outerHTML.slice(0, 80));
  }
  if (!document.querySelector('h1')) problems.push('no h1');
  return problems;
}"""


def assertion(private_key, client_id: str, subject: str, audience: str, kid: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": subject, "aud": audience, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": kid})


def request_token(base_url: str, client_id: str, secret: str, private_key, subject: str, kid: str) -> requests.Response:
    form = {"grant_type": JWT_BEARER,
            "assertion": assertion(private_key, client_id, subject, base_url + "/oauth/token", kid)}
    return requests.post(base_url + "/oauth/token", data=form, auth=(client_id, secret), timeout=HTTP_TIMEOUT)


def test_the_seed_story_in_chromium(live_server, tmp_path):
    assert CHROMIUM.exists(), (
        f"Chromium is required for the browser tests: {CHROMIUM} is missing (apt-get install -y chromium)"
    )
    app, base_url = live_server
    with app.app_context():
        admin = make_admin(org_name="Acme Payments", email="ada@acme.example")
        db.session.remove()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    icon_file = story_icon(tmp_path / "billing-icon.png")
    private_key = ec.generate_private_key(ec.SECP256R1())
    shots: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                             timeout=30_000)
        try:
            context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT_MS)
            context.set_default_navigation_timeout(WAIT_MS)
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
            page = context.new_page()
            expect.set_options(timeout=WAIT_MS)

            def shot(name: str) -> Path:
                assert page.evaluate(ACCESSIBILITY_PROBLEMS) == [], name
                path = SCREENSHOTS / f"{len(shots) + 1:02d}-{name}.png"
                page.screenshot(path=str(path), full_page=True)
                shots.append(path.name)
                return path

            # Sign in.
            page.goto("/console")
            expect(page).to_have_url(f"{base_url}/console/sign-in?next=/console/")
            expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
            expect(page.get_by_label("Email")).to_be_focused()
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Shift+Tab")
            expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
            shot("sign-in")
            page.get_by_label("Email").fill(admin.email)
            page.get_by_label("Password").fill("not the password")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_have_text("The email address or password is not correct.")
            shot("sign-in-failed")
            page.get_by_label("Password").fill(admin.password)
            page.get_by_role("button", name="Sign in").click()

            # No apps yet: the empty state leads to the registration form.
            expect(page.get_by_role("heading", name="No apps yet")).to_be_visible()
            shot("apps-empty")
            page.get_by_role("link", name="Register new app").click()
            expect(page.get_by_role("heading", name="Register new app")).to_be_visible()
            page.get_by_label("Name").fill("Billing service")
            page.get_by_label("Description").fill("Charges customers and sends invoices every night.")
            page.get_by_label("Icon").set_input_files(str(icon_file))
            shot("register-app")
            page.get_by_role("button", name="Register app").click()

            # App details: the client id, with a copy button.
            expect(page.get_by_role("heading", name="Billing service", level=1)).to_be_visible()
            expect(page.get_by_role("status").first).to_contain_text("Registered “Billing service”")
            client_id = page.get_by_role("textbox", name="Client ID").input_value()
            assert len(client_id) == 32
            icon = page.locator("img.app-icon").first
            expect(icon).to_be_visible()
            assert icon.evaluate("img => img.complete && img.naturalWidth > 0"), "the icon did not load"
            page.get_by_role("button", name="Copy").first.click()
            expect(page.get_by_role("button", name="Copied")).to_be_visible()
            assert page.evaluate("navigator.clipboard.readText()") == client_id

            # Register the public half of the app's signing key.
            page.get_by_role("textbox", name="Public key").fill(public_pem(private_key).decode())
            page.get_by_label("Key ID (kid)").fill("billing-key-1")
            page.get_by_role("button", name="Add public key").click()
            expect(page.get_by_role("status").first).to_contain_text("Added public key billing-key-1 (EC-P-256)")
            expect(page.locator("#keys table")).to_contain_text("billing-key-1")

            # API access: the app may ask for the platform's `default` API, with its read scope, as its
            # default API (the token requests below name no resource).
            access = page.locator("form.access-form", has=page.get_by_text("http://localhost", exact=True))
            access.get_by_label("read", exact=True).check()
            access.get_by_label("Default API").check()
            access.get_by_role("button", name="Save access to default").click()
            expect(page.get_by_role("status").first).to_contain_text(
                "“Billing service” may ask for “default” with read."
            )
            expect(access.get_by_label("read", exact=True)).to_be_checked()

            # A service account to be the subject of the tokens.
            page.get_by_role("link", name="Service accounts").click()
            expect(page.get_by_text("No service accounts yet")).to_be_visible()
            page.get_by_label("Name").fill("billing-worker")
            page.get_by_role("button", name="Create service account").click()
            row = page.get_by_role("row").filter(has_text="billing-worker")
            expect(row).to_contain_text("Active")
            subject = row.locator("code").inner_text()
            assert subject.startswith("acc_")
            shot("service-accounts")

            # Back to the app: add a secret and read it, once.
            page.get_by_role("link", name="Apps", exact=True).click()
            expect(page.get_by_role("list", name="Apps")).to_contain_text(client_id)
            shot("apps")
            page.get_by_role("link", name="Billing service").click()
            expect(page.get_by_text("No secrets yet")).to_be_visible()
            shot("app-details-without-secrets")
            page.get_by_role("button", name="Add secret").click()
            expect(page.get_by_role("heading", name="Your new client secret")).to_be_visible()
            expect(page.get_by_text("it will not be shown again")).to_be_visible()
            secret = page.get_by_role("textbox", name="New client secret").input_value()
            assert len(secret) >= 22
            page.locator('[data-copy-target="new-secret"]').click()
            assert page.evaluate("navigator.clipboard.readText()") == secret
            expect(page).to_have_url(f"{base_url}/console/apps/{client_id}")  # a reload will not post again
            shot("secret-shown-once")

            # After a reload the secret is gone for good; the list still has exactly one secret.
            page.reload()
            expect(page.get_by_role("heading", name="Billing service", level=1)).to_be_visible()
            expect(page.get_by_role("heading", name="Your new client secret")).to_have_count(0)
            assert secret not in page.content()
            secret_rows = page.locator("#secrets tbody tr")
            expect(secret_rows).to_have_count(1)
            expect(secret_rows.first).to_contain_text("never")
            secret_id = secret_rows.first.locator("code").inner_text()

            # The secret and the key get a token.
            response = request_token(base_url, client_id, secret, private_key, subject, "billing-key-1")
            assert response.status_code == 200, response.text[:300]
            assert response.json()["token_type"] == "Bearer"
            page.reload()
            expect(secret_rows.first).not_to_contain_text("never")  # last used is recorded
            details = shot("app-details")
            if os.environ.get("AUTHSERVER_UPDATE_SCREENSHOTS") == "1":  # refresh the README's picture on demand
                DOC_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(details, DOC_SCREENSHOT)

            page.get_by_role("link", name="Edit").click()
            expect(page.get_by_role("heading", name="Edit app")).to_be_visible()
            expect(page.get_by_label("Name")).to_have_value("Billing service")
            shot("edit-app")
            page.get_by_role("link", name="Cancel").click()

            # The trash can: a confirmation dialog, then the secret is gone.
            page.get_by_role("button", name=f"Delete secret {secret_id}").click()
            dialog = page.get_by_role("dialog", name="Delete this secret?")
            expect(dialog).to_be_visible()
            shot("delete-secret-dialog")
            dialog.get_by_role("button", name="Cancel").click()
            expect(dialog).to_be_hidden()
            expect(secret_rows).to_have_count(1)
            page.get_by_role("button", name=f"Delete secret {secret_id}").click()
            dialog.get_by_role("button", name="Delete secret").click()
            expect(page.get_by_role("status").first).to_contain_text(f"Deleted secret {secret_id}.")
            expect(page.get_by_text("No secrets yet")).to_be_visible()
            shot("secret-deleted")

            # The very next token request with the deleted secret is refused.
            response = request_token(base_url, client_id, secret, private_key, subject, "billing-key-1")
            assert response.status_code == 401, response.text[:300]
            assert response.json()["error"] == "invalid_client"

            # The audit log tells the story.
            page.get_by_role("link", name="Audit log").click()
            for action in ("client.created", "key.created", "client.granted", "account.created", "secret.created",
                           "secret.deleted"):
                expect(page.get_by_role("cell", name=action, exact=True).first).to_be_visible()
            shot("audit-log")

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_text("You have signed out.")).to_be_visible()
            shot("signed-out")
            page.goto(f"/console/apps/{client_id}")
            expect(page).to_have_url(f"{base_url}/console/sign-in?next=/console/apps/{client_id}")
        finally:
            browser.close()

    assert DOC_SCREENSHOT.stat().st_size > 10_000
    assert len(shots) >= 10, shots


def test_the_trash_can_works_without_javascript(live_server):
    """With scripts off, the trash can leads to a confirmation page, and copy buttons stay hidden."""
    assert CHROMIUM.exists(), (
        f"Chromium is required for the browser tests: {CHROMIUM} is missing (apt-get install -y chromium)"
    )
    from authserver.services.client_secrets import add_secret, list_secrets
    from authserver.services.clients import register_client

    app, base_url = live_server
    with app.app_context():
        admin = make_admin(org_name="No Script Ltd")
        client_id = register_client(admin.org_id, "Plain HTML app").client_id
        secret_id = add_secret(client_id).secret_id
        db.session.remove()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                             timeout=30_000)
        try:
            context = browser.new_context(base_url=base_url, java_script_enabled=False)
            context.set_default_timeout(WAIT_MS)
            context.set_default_navigation_timeout(WAIT_MS)
            page = context.new_page()
            page.goto("/console/sign-in")
            page.get_by_label("Email").fill(admin.email)
            page.get_by_label("Password").fill(admin.password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("link", name="Plain HTML app").click()
            expect(page.get_by_role("button", name="Copy")).to_have_count(0)  # hidden: it needs a script
            expect(page.get_by_role("textbox", name="Client ID")).to_have_value(client_id)
            page.get_by_role("button", name=f"Delete secret {secret_id}").click()
            expect(page).to_have_url(
                re.compile(re.escape(f"{base_url}/console/apps/{client_id}/secrets/{secret_id}/delete") + r"\??$")
            )
            expect(page.get_by_role("heading", name="Delete this secret?")).to_be_visible()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "no-script-delete-secret-confirm.png"), full_page=True)
            page.get_by_role("button", name="Delete secret").click()
            expect(page.get_by_role("status").first).to_contain_text(f"Deleted secret {secret_id}.")
            expect(page.get_by_text("No secrets yet")).to_be_visible()
        finally:
            browser.close()
    with app.app_context():
        assert list_secrets(client_id) == []
        db.session.remove()
