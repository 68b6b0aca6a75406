"""APIs in a real browser (Debian's Chromium, headless, driven by Playwright): sign in, register an API
with scopes, register an app, give it the API's scopes with the checkboxes, add a public key and a
secret, get a token over real HTTP with `resource` = the API's identifier and check its `aud` and
`scope` (verified with the JWKS); the pages fit a 390 px wide phone; deleting the API says what goes,
and then it is gone for good.

A screenshot of each page goes to test-artifacts/screenshots/ (prefix apis-)."""
from __future__ import annotations

import time
import uuid

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect, sync_playwright

from authserver.extensions import db

from ..conftest import JWT_BEARER, public_pem
from ..console_support import make_admin
from .test_console_story import (
    ACCESSIBILITY_PROBLEMS,
    CHROMIUM,
    CHROMIUM_ARGS,
    HTTP_TIMEOUT,
    SCREENSHOTS,
    WAIT_MS,
)

ORDERS = "https://api.acme.example/orders"
PHONE = {"width": 390, "height": 844}
# The page is no wider than the viewport: nothing makes it scroll sideways.
HORIZONTAL_OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def token_request(base_url: str, client_id: str, secret: str, private_key, subject: str, kid: str,
                  **form) -> requests.Response:
    now = int(time.time())
    claims = {"iss": client_id, "sub": subject, "aud": base_url + "/oauth/token", "iat": now, "exp": now + 120,
              "jti": uuid.uuid4().hex}
    data = {"grant_type": JWT_BEARER,
            "assertion": jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": kid}), **form}
    return requests.post(base_url + "/oauth/token", data=data, auth=(client_id, secret), timeout=HTTP_TIMEOUT)


def verified_claims(base_url: str, token: str) -> dict:
    """What a resource server does offline: the JWKS's key, the issuer, its own identifier as aud, typ."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    jwks = requests.get(base_url + "/oauth/jwks", timeout=HTTP_TIMEOUT).json()
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    return jwt.decode(token, key.key, algorithms=[header["alg"]], audience=ORDERS, issuer=base_url,
                      options={"require": ["exp", "iat", "sub", "jti"]})


def test_an_api_its_scopes_and_an_apps_access_in_chromium(live_server):
    assert CHROMIUM.exists(), (
        f"Chromium is required for the browser tests: {CHROMIUM} is missing (apt-get install -y chromium)"
    )
    app, base_url = live_server
    with app.app_context():
        admin = make_admin(org_name="Acme Shop", email="grace@acme.example")
        db.session.remove()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    private_key = ec.generate_private_key(ec.SECP256R1())

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                             timeout=30_000)
        try:
            context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT_MS)
            context.set_default_navigation_timeout(WAIT_MS)
            page = context.new_page()
            expect.set_options(timeout=WAIT_MS)

            def shot(name: str) -> None:
                assert page.evaluate(ACCESSIBILITY_PROBLEMS) == [], name
                page.screenshot(path=str(SCREENSHOTS / f"apis-{name}.png"), full_page=True)

            page.goto("/console/sign-in")
            page.get_by_label("Email").fill(admin.email)
            page.get_by_label("Password").fill(admin.password)
            page.get_by_role("button", name="Sign in").click()

            # The APIs page: none of the organization's own yet; the platform's, read-only.
            page.get_by_role("link", name="APIs", exact=True).click()
            expect(page.get_by_role("heading", name="APIs", level=1)).to_be_visible()
            expect(page.get_by_text("No APIs of Acme Shop yet")).to_be_visible()
            expect(page.get_by_role("list", name="Platform APIs")).to_contain_text("Management API")
            shot("empty")

            # Register an API with two scopes, one per line.
            page.get_by_role("link", name="Register API").first.click()
            page.get_by_label("Name").fill("Orders API")
            page.get_by_label("Identifier").fill(ORDERS + "#v1")
            page.get_by_label("Scopes").fill("orders:read = Read orders\norders:write = Create and change orders")
            page.get_by_role("button", name="Register API").click()
            expect(page.locator("#identifier-error")).to_contain_text("fragment")  # refused, the form kept
            expect(page.get_by_label("Scopes")).to_have_value(
                "orders:read = Read orders\norders:write = Create and change orders")
            shot("register-refused")
            page.get_by_label("Identifier").fill(ORDERS)
            page.get_by_role("button", name="Register API").click()
            expect(page.get_by_role("heading", name="Orders API", level=1)).to_be_visible()
            expect(page.get_by_role("status").first).to_contain_text("Registered “Orders API”")
            expect(page.get_by_role("textbox", name="API identifier")).to_have_value(ORDERS)

            # A third scope, added on the API's page.
            page.get_by_text("Add a scope").click()
            page.get_by_label("Scope name").fill("orders:ship")
            page.get_by_label("Description").fill("Ship orders")
            page.get_by_role("button", name="Add scope").click()
            expect(page.get_by_role("status").first).to_contain_text("Added the scope orders:ship.")
            expect(page.locator("#scopes tbody tr")).to_have_count(3)
            shot("api")

            # An app, and its access to the API: two of the three scopes, with the checkboxes.
            page.get_by_role("link", name="Apps", exact=True).click()
            page.get_by_role("link", name="Register new app").click()
            page.get_by_label("Name").fill("Shop frontend")
            page.get_by_role("button", name="Register app").click()
            expect(page.get_by_role("heading", name="Shop frontend", level=1)).to_be_visible()
            client_id = page.get_by_role("textbox", name="Client ID").input_value()
            access = page.locator("form.access-form", has=page.get_by_text(ORDERS, exact=True))
            expect(access.get_by_label("orders:read Read orders")).not_to_be_checked()
            access.get_by_label("orders:read Read orders").check()
            access.get_by_label("orders:ship Ship orders").check()
            access.get_by_role("button", name="Save access to Orders API").click()
            expect(page.get_by_role("status").first).to_contain_text(
                "“Shop frontend” may ask for “Orders API” with orders:read, orders:ship. It is the app's default API.")
            access = page.locator("form.access-form", has=page.get_by_text(ORDERS, exact=True))
            expect(access.get_by_label("orders:read Read orders")).to_be_checked()
            expect(access.get_by_label("orders:write Create and change orders")).not_to_be_checked()
            expect(access.get_by_label("orders:ship Ship orders")).to_be_checked()
            expect(access.get_by_label("Default API")).to_be_checked()

            # Its public key, pasted as PEM, and a secret, read from the page once.
            page.get_by_role("textbox", name="Public key").fill(public_pem(private_key).decode())
            page.get_by_label("Key ID (kid)").fill("shop-key-1")
            page.get_by_role("button", name="Add public key").click()
            expect(page.get_by_role("status").first).to_contain_text("Added public key shop-key-1 (EC-P-256)")
            page.get_by_role("button", name="Add secret").click()
            secret = page.get_by_role("textbox", name="New client secret").input_value()
            assert len(secret) >= 22
            shot("app-with-access")

            # A service account is the subject of the tokens.
            page.get_by_role("link", name="Service accounts").click()
            page.get_by_label("Name").fill("shop-worker")
            page.get_by_role("button", name="Create service account").click()
            subject = page.get_by_role("row").filter(has_text="shop-worker").locator("code").inner_text()

            # Tokens over real HTTP: aud is the API's identifier, scope what was asked and granted.
            response = token_request(base_url, client_id, secret, private_key, subject, "shop-key-1",
                                     resource=ORDERS, scope="orders:read")
            assert response.status_code == 200, response.text[:300]
            body = response.json()
            assert body["scope"] == "orders:read"
            claims = verified_claims(base_url, body["access_token"])
            assert claims["aud"] == ORDERS and claims["scope"] == "orders:read" and claims["sub"] == subject
            assert claims["client_id"] == client_id and claims["org_id"] == admin.org_id
            everything = token_request(base_url, client_id, secret, private_key, subject, "shop-key-1", resource=ORDERS)
            assert verified_claims(base_url, everything.json()["access_token"])["scope"] == "orders:read orders:ship"
            not_granted = token_request(base_url, client_id, secret, private_key, subject, "shop-key-1",
                                        resource=ORDERS, scope="orders:write")
            assert not_granted.status_code == 400 and not_granted.json()["error"] == "invalid_scope"

            # The API's own app: the one that introspects its tokens.
            page.get_by_role("link", name="APIs", exact=True).click()
            page.get_by_role("link", name="Orders API").click()
            page.get_by_label("App to bind").select_option(label=f"Shop frontend ({client_id[:8]}…)")
            page.get_by_role("button", name="Bind app").click()
            expect(page.get_by_role("list", name="The API's own apps")).to_contain_text(client_id)
            expect(page.locator("#access")).to_contain_text("Shop frontend")

            # A phone's width: no page scrolls sideways.
            page.set_viewport_size(PHONE)
            api_url = page.url
            for path in ("/console/apis", api_url, f"/console/apps/{client_id}", "/console/apis/new"):
                page.goto(path)
                assert page.evaluate(HORIZONTAL_OVERFLOW) <= 0, path
            page.goto(f"/console/apps/{client_id}#access")
            shot("app-access-390")
            page.goto(api_url)
            shot("api-390")
            page.set_viewport_size({"width": 1280, "height": 900})

            # Deleting the API: the dialog says exactly what goes.
            page.get_by_role("button", name="Delete API").click()
            dialog = page.get_by_role("dialog", name="Delete the API “Orders API”?")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("The access of 1 app goes with it: “Shop frontend”.")
            expect(dialog).to_contain_text("Every live access token for it is revoked at once (2 now).")
            shot("delete-api-dialog")
            dialog.get_by_role("button", name="Cancel").click()
            expect(dialog).to_be_hidden()
            page.get_by_role("button", name="Delete API").click()
            dialog.get_by_role("button", name="Delete API").click()
            expect(page.get_by_role("status").first).to_contain_text("Deleted the API “Orders API”.")
            expect(page.get_by_text("No APIs of Acme Shop yet")).to_be_visible()

            # Its tokens are revoked and no new one is issued for it.
            introspected = requests.post(base_url + "/oauth/introspect", data={"token": body["access_token"]},
                                         auth=(client_id, secret), timeout=HTTP_TIMEOUT)
            assert introspected.json() == {"active": False}
            gone = token_request(base_url, client_id, secret, private_key, subject, "shop-key-1", resource=ORDERS)
            assert gone.status_code == 400 and gone.json()["error"] == "invalid_target"

            page.get_by_role("link", name="Audit log").click()
            for action in ("api.created", "api.scope_added", "client.granted", "api.client_bound", "api.deleted"):
                expect(page.get_by_role("cell", name=action, exact=True).first).to_be_visible()
        finally:
            browser.close()
