"""Every console page on a 390 x 844 phone (Debian's Chromium, headless, driven by Playwright): signed
in, with long names, ids, URLs and labels in the data, no page scrolls sideways and no element sticks
out of the viewport (wide tables become stacked cards or scroll inside their own box). The same pages
are checked at 1280 px. A full-page screenshot of every page and dialog at each width is saved in the
test's temporary directory (never in the checkout), named in every failure so a person can look; of a page
taller than SHOT_HEIGHT (the API reference is ~75,000 px tall on a phone) the screenshot holds its top
SHOT_HEIGHT pixels: the overflow check reads the whole page either way, and a picture of the rest costs
seconds and shows nobody anything. Each width is its own test, so the two can run on two workers at once."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from playwright.sync_api import expect, sync_playwright

from authserver.extensions import db

from ..conftest import public_pem
from ..console_support import make_admin
from .test_console_story import (
    ACCESSIBILITY_PROBLEMS,
    CHROMIUM,
    CHROMIUM_ARGS,
    WAIT_MS,
)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOT_HEIGHT = 8_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LONG = "Quarterly-reconciliation-and-settlement-batch-processor-for-the-european-payment-rails"  # no break chance

# Elements wider than the viewport or reaching past its right edge, except inside a box that scrolls
# sideways on its own (and fits the viewport itself) and hidden or clipped ones.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrollsOnItsOwn = (el) => {
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      const style = getComputedStyle(box);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX)) return box;
    }
    return null;
  };
  const problems = [];
  const offenders = new Set();  // only the outermost offender of a subtree is named
  const pageWidth = document.documentElement.scrollWidth;
  if (pageWidth > width) problems.push('page scrollWidth ' + pageWidth);
  for (const el of document.body.querySelectorAll('*')) {
    const rect = el.getBoundingClientRect();
    if (rect.width <= 1 || rect.height <= 1 || getComputedStyle(el).visibility === 'hidden') continue;  // sr-only
    if (el.closest('dialog:not([open])')) continue;
    if (rect.right <= width + 0.5 && rect.left >= -0.5 && rect.width <= width + 0.5) continue;
    const box = scrollsOnItsOwn(el);
    if (box && box.getBoundingClientRect().right <= width + 0.5) continue;
    offenders.add(el);
    if (offenders.has(el.parentElement)) continue;
    problems.push(el.tagName.toLowerCase() + '.' + (el.getAttribute('class') || '')
                  + ' right=' + Math.round(rect.right) + ' width=' + Math.round(rect.width));
  }
  return problems.slice(0, 10);
}"""


def seed(app, admin) -> dict:
    """An organization full of long things: what a phone has to fit."""
    from authserver.services.accounts import create_account
    from authserver.services.apis import create_api, grant_client
    from authserver.services.client_keys import add_key
    from authserver.services.client_secrets import add_secret
    from authserver.services.clients import register_client
    from authserver.services.trusted_issuers import add_issuer, add_rule, allow_client

    with app.app_context():
        client = register_client(admin.org_id, LONG[:100], description=(LONG + " ") * 3)
        api = create_api("Orders " + LONG[:60], "https://api.acme.example/" + LONG.lower() + "/v1/orders",
                         org_id=admin.org_id, scopes=[("orders:read:" + "x" * 40, "Read " + LONG),
                                                      ("orders:write", "Write")])
        grant_client(client.client_id, api.api_id, ["orders:write"], org_id=admin.org_id)
        secret = add_secret(client.client_id, expires_in_days=5, label=LONG[:100])
        add_secret(client.client_id)
        key = add_key(client.client_id, public_pem(ec.generate_private_key(ec.SECP256R1())).decode(),
                      kid="kid-" + "k" * 120, org_id=admin.org_id)
        account = create_account(admin.org_id, LONG[:100], "service")
        create_account(admin.org_id, "Second admin", "user", email=("a" * 60) + "@" + ("b" * 60) + ".example",
                       password="correct horse battery staple", is_admin=True)
        issuer_jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
        issuer = add_issuer(admin.org_id, "https://" + LONG.lower() + ".example/oidc/" + LONG.lower(),
                            "https://authserver.example/" + LONG.lower(),
                            jwks={"keys": [{**issuer_jwk, "kid": "issuer-" + "k" * 100}]})
        rule = add_rule(issuer.issuer_id, account.account_id,
                        [f"sub=system:serviceaccount:{LONG.lower()}:worker", "repository=" + LONG],
                        scope="orders:write", resource=api.identifier)
        allow_client(issuer.issuer_id, client.client_id)
        ids = {"client": client.client_id, "api": api.api_id, "secret": secret.secret_id, "kid": key.kid,
               "account": account.account_id, "issuer": issuer.issuer_id, "rule": rule.rule_id}
        db.session.remove()
    return ids


def pages(ids: dict) -> list[str]:
    app = f"/console/apps/{ids['client']}"
    issuer = f"/console/issuers/{ids['issuer']}"
    return [
        "/console/apps", "/console/apps/new", app, f"{app}/edit", f"{app}/delete",
        f"{app}/secrets/{ids['secret']}/delete", f"{app}/keys/{ids['kid']}/delete",
        "/console/apis", "/console/apis/new", f"/console/apis/{ids['api']}", f"/console/apis/{ids['api']}/delete",
        "/console/accounts", f"/console/accounts/{ids['account']}/disable", "/console/admins",
        "/console/audit", f"/console/audit?target={ids['client']}&size=25", "/console/audit?since=yesterday",
        "/console/issuers", "/console/issuers/new", issuer, f"{issuer}/delete", f"{issuer}/rules/{ids['rule']}/delete",
        f"{issuer}/clients/{ids['client']}/delete",
        "/console/account", "/console/account/password", "/api/v1/docs", "/console/no-such-page",
        f"/console/apps/{ids['client']}x",
    ]


def screenshot_name(width: int, number: int, where: str) -> str:
    """A file name that says the width and the page: "390-07-console-apps-x-delete.png"."""
    slug = re.sub(r"[^0-9A-Za-z]+", "-", where).strip("-")[:80] or "page"
    return f"{width}-{number:02d}-{slug}.png"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone-390", "desktop-1280"])
def test_every_console_page_fits_the_width(live_server, tmp_path, viewport):
    assert CHROMIUM.exists(), (
        f"Chromium is required for the browser tests: {CHROMIUM} is missing (apt-get install -y chromium)"
    )
    app, base_url = live_server
    with app.app_context():
        admin = make_admin(org_name="Acme Payments and Settlements " + LONG[:40], email="ada@acme.example")
        db.session.remove()
    ids = seed(app, admin)
    overflowing: list = []  # every page is visited before the verdict, so one run names them all
    shots_dir = tmp_path / "screenshots"
    shots_dir.mkdir()
    shots: list[Path] = []
    where_to_look = f"screenshots of every page at {viewport['width']} px: {shots_dir}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                             timeout=30_000)
        try:
            context = browser.new_context(base_url=base_url, viewport=viewport)
            context.set_default_timeout(WAIT_MS)
            context.set_default_navigation_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page = context.new_page()

            def fits(where: str) -> None:
                found = page.evaluate(OVERFLOW)
                if found:
                    overflowing.append((viewport["width"], where, found))
                shot = shots_dir / screenshot_name(viewport["width"], len(shots), where)
                width, height = page.evaluate("[document.documentElement.scrollWidth, "
                                              "document.documentElement.scrollHeight]")
                clip = {"x": 0, "y": 0, "width": width, "height": SHOT_HEIGHT} if height > SHOT_HEIGHT else None
                page.screenshot(path=str(shot), full_page=True, clip=clip)
                shots.append(shot)

            page.goto("/console/sign-in")
            fits("sign-in")
            page.get_by_label("Email").fill(admin.email)
            page.get_by_label("Password").fill("not the password")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_be_visible()
            fits("sign-in failed")
            page.get_by_label("Password").fill(admin.password)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(f"{base_url}/console/apps")

            for path in pages(ids):
                response = page.goto(path)
                assert response is not None and response.status in (200, 400, 404), (path, response.status)
                if path.startswith("/console/"):
                    assert page.evaluate(ACCESSIBILITY_PROBLEMS) == [], path
                    expect(page.get_by_role("link", name="Audit log")).to_be_attached()
                fits(path)

            # The header's navigation is reachable on the phone: every section is one tap away.
            page.goto("/console/apps")
            for name in ("Apps", "APIs", "Service accounts", "Trusted issuers", "Admins", "Audit log"):
                expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)
                       ).to_be_visible()
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()

            # The confirmation dialogs, opened.
            page.goto(f"/console/apps/{ids['client']}")
            for opener, title in ((f"Delete secret {ids['secret']}", "Delete this secret?"),
                                  (f"Delete key {ids['kid']}", "Delete this public key?"),
                                  ("Delete app", f"Delete “{LONG[:100]}”?")):
                page.get_by_role("button", name=opener, exact=True).click()
                dialog = page.get_by_role("dialog", name=title)
                expect(dialog).to_be_visible()
                fits(f"dialog {title}")
                dialog.get_by_role("button", name="Cancel").click()
                expect(dialog).to_be_hidden()

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_text("You have signed out.")).to_be_visible()
            fits("signed out")
            context.close()
        except Exception as exc:  # a failure half-way still says where the screenshots so far are
            exc.add_note(where_to_look)
            raise
        finally:
            browser.close()
    assert not overflowing, "\n".join([*map(str, overflowing), where_to_look])
    expected = len(pages(ids)) + 3 + 3  # the pages, sign-in, its error, signed out, 3 dialogs
    assert len(shots) == expected and len(set(shots)) == expected, (len(shots), expected, where_to_look)
    for shot in shots:
        assert shot.is_file() and shot.stat().st_size > len(PNG_SIGNATURE), (f"screenshot missing or empty: {shot}",
                                                                                where_to_look)
        assert shot.read_bytes()[:8] == PNG_SIGNATURE, (f"not a PNG: {shot}", where_to_look)
    widths = {shot.name.split("-", 1)[0] for shot in shots}
    assert widths == {str(viewport["width"])}, (widths, where_to_look)
