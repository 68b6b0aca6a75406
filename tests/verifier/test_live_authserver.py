"""The verifier against a real `authserver serve`, set up with the CLI (SPEC §6, §9): a client gets
tokens for an organization's API with the JWT bearer grant; the API verifies them offline, follows a
signing-key rotation through the unknown kid, and introspects as the API's own client.

Offline verification cannot see revocation: a revoked token keeps verifying until it expires; only
introspection says it is no longer active."""
from __future__ import annotations

import time
import uuid
from urllib.parse import quote_plus

import jwt
import pytest
import requests
from authserver_verifier import InvalidToken, Verifier
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..servers import free_port, running_server, server_env
from .cli_session import CliSession

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ORDERS = "https://api.example.com/orders"
BILLING = "https://api.example.com/billing"
HTTP_TIMEOUT = 10


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("verifier-live")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = server_env(root / "instance", issuer, AUTHSERVER_SIGNING_KEY_ACTIVATION_DELAY="0",
                     AUTHSERVER_SIGNING_KEY_REFRESH="1")
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = root / "client.pub.pem"
    key_file.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    cli = CliSession(env)  # starts importing while the server boots
    try:
        with running_server(env, port, workers=1, log_path=root / "server.log") as base:  # `serve` runs init
            org = cli("org", "create", "Acme")["org_id"]
            account = cli("account", "create", org, "orders-worker", "--kind", "service")["account_id"]
            client = cli("client", "create", org, "Shop backend")["client_id"]
            secret = cli("secret", "add", client)["client_secret"]
            kid = cli("key", "add", client, str(key_file))["kid"]
            orders_api = cli("api", "create", "--org", org, "Orders", ORDERS, "--scope", "orders:read",
                             "--scope", "orders:write")["api_id"]
            cli("api", "create", "--org", org, "Billing", BILLING, "--scope", "invoices:read")
            cli("client", "grant", client, ORDERS, "--scope", "orders:read", "--default")
            cli("client", "grant", client, BILLING, "--scope", "invoices:read")
            api_client = cli("client", "create", org, "Orders API")["client_id"]
            api_secret = cli("secret", "add", api_client)["client_secret"]
            cli("api", "bind-client", orders_api, api_client)
            yield {"issuer": issuer, "base": base, "cli": cli, "org": org, "account": account, "client": client,
                   "secret": secret, "key": key, "kid": kid, "api_client": api_client, "api_secret": api_secret}
    finally:
        cli.close()


def basic(client_id: str, secret: str) -> tuple[str, str]:
    return quote_plus(client_id), quote_plus(secret)  # RFC 6749 §2.3.1


def get_token(live, **form) -> str:
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": live["client"], "sub": live["account"], "aud": live["issuer"] + "/oauth/token",
         "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex},
        live["key"], algorithm="ES256", headers={"kid": live["kid"]},
    )
    answer = requests.post(live["base"] + "/oauth/token", auth=basic(live["client"], live["secret"]),
                           data={"grant_type": JWT_BEARER, "assertion": assertion, **form}, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def test_verify_rotation_and_introspection(live):
    # No refetch rate limit here: with AUTHSERVER_SIGNING_KEY_ACTIVATION_DELAY=0 the rotated key signs
    # at once, less than any min_refresh_interval after the first fetch (in production the delay, longer
    # than the JWKS max-age, lets verifiers see a new key before it signs).
    verifier = Verifier(live["issuer"], ORDERS, org_id=live["org"], timeout=HTTP_TIMEOUT, min_refresh_interval=0,
                        introspection_client=(live["api_client"], live["api_secret"]))

    # A token for the Orders API verifies offline, with its organization and scope.
    token = get_token(live, resource=ORDERS)
    access_token = verifier.verify(token, required_scopes=["orders:read"])
    assert (access_token.sub, access_token.client_id, access_token.org_id) == (live["account"], live["client"],
                                                                              live["org"])
    assert access_token.aud == ORDERS and access_token.scopes == {"orders:read"}
    assert verifier.verify(get_token(live)).aud == ORDERS  # the client's default API

    # A token for another API of the same organization is refused by Orders, accepted by Billing.
    billing_token = get_token(live, resource=BILLING)
    with pytest.raises(InvalidToken, match="another API"):
        verifier.verify(billing_token)
    assert Verifier(live["issuer"], BILLING, timeout=HTTP_TIMEOUT).verify(billing_token).aud == BILLING
    # Pinned to another organization, the same valid token is refused.
    with pytest.raises(InvalidToken, match="another organization"):
        Verifier(live["issuer"], ORDERS, org_id="org_someone_else", timeout=HTTP_TIMEOUT).verify(token)

    # Signing-key rotation: the new kid is unknown to the cached JWKS and is fetched on sight.
    old_kid = kid_of(token)
    live["cli"]("signing-key", "rotate")
    deadline = time.monotonic() + 10
    rotated = get_token(live, resource=ORDERS)
    while kid_of(rotated) == old_kid and time.monotonic() < deadline:
        time.sleep(0.3)  # each worker rereads its signing key every AUTHSERVER_SIGNING_KEY_REFRESH second
        rotated = get_token(live, resource=ORDERS)
    assert kid_of(rotated) != old_kid
    assert kid_of(rotated) not in verifier._keys  # cached before the rotation
    assert verifier.verify(rotated, required_scopes=["orders:read"]).sub == live["account"]
    assert verifier.verify(token)  # the retired key stays published while its tokens live

    # Introspection by the API's own client sees the token active; the Billing token is not for it.
    assert verifier.introspect(token, required_scopes=["orders:read"]).sub == live["account"]
    with pytest.raises(InvalidToken):
        verifier.introspect(billing_token)

    # The client revokes the token: introspection sees it at once, offline verification cannot.
    answer = requests.post(live["base"] + "/oauth/revoke", auth=basic(live["client"], live["secret"]),
                           data={"token": token}, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200, answer.text
    with pytest.raises(InvalidToken, match="not active"):
        verifier.introspect(token)
    assert verifier.verify(token).sub == live["account"]
    assert verifier.introspect(rotated).sub == live["account"]  # other tokens stay active
