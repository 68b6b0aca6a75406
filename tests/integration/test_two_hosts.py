"""Two server processes (two 'hosts', 2 workers each) sharing one PostgreSQL and one Redis."""
from __future__ import annotations

import secrets
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import jwt
import psycopg
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from ..conftest import JWT_BEARER, PG_URL, REDIS_URL, private_pem, public_pem
from ..servers import cli, free_port, running_server, server_env, setup_cli

pytestmark = pytest.mark.skipif(
    not (PG_URL and REDIS_URL),
    reason="needs AUTHSERVER_TEST_DATABASE_URL and AUTHSERVER_TEST_REDIS_URL (set by .ci/run)",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    parts = urlsplit(PG_URL)
    name = "authserver_hosts_" + uuid.uuid4().hex[:10]
    admin_dsn = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    shared = {
        "AUTHSERVER_DATABASE_URL": database_url,
        "AUTHSERVER_REDIS_URL": REDIS_URL,
        "AUTHSERVER_SECRET_PEPPER": secrets.token_urlsafe(32),
        "AUTHSERVER_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "AUTHSERVER_SESSION_KEY": secrets.token_urlsafe(32),
        "AUTHSERVER_SIGNING_KEY_REFRESH": "1",
        "AUTHSERVER_SIGNING_KEY_ACTIVATION_DELAY": "3",
        "AUTHSERVER_SIGNING_ALG": "ES256",
    }
    root = tmp_path_factory.mktemp("hosts")
    env_a = server_env(root / "a", issuer, **shared)
    env_b = server_env(root / "b", issuer, **shared)
    setup_cli(env_a, "init")
    org = setup_cli(env_a, "org", "create", "Two hosts")["org_id"]
    account = setup_cli(env_a, "account", "create", org, "worker", "--kind", "service")["account_id"]
    client_id = setup_cli(env_a, "client", "create", org, "Backend")["client_id"]
    setup_cli(env_a, "api", "create", "--org", org, "Orders", "https://orders.acme.test", "--scope", "read")
    setup_cli(env_a, "client", "grant", client_id, "https://orders.acme.test", "--scope", "read")
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = root / "client.pub.pem"
    key_file.write_bytes(public_pem(key))
    kid = setup_cli(env_a, "key", "add", client_id, str(key_file), "--kid", "k1")["kid"]
    try:
        with running_server(env_a, port_a, log_path=root / "a.log") as url_a, \
                running_server(env_b, port_b, log_path=root / "b.log") as url_b:
            yield {"a": url_a, "b": url_b, "env": env_a, "issuer": issuer, "client_id": client_id,
                   "account": account, "key": key, "kid": kid}
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _assertion(c) -> str:
    now = int(time.time())
    claims = {"iss": c["client_id"], "sub": c["account"], "aud": c["issuer"] + "/oauth/token",
              "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private_pem(c["key"]), algorithm="ES256", headers={"kid": c["kid"]})


def _token(base: str, c, secret: str, assertion: str | None = None) -> requests.Response:
    with requests.Session() as s:  # a new connection each time, so either worker may answer
        return s.post(base + "/oauth/token", auth=(c["client_id"], secret), timeout=10,
                      data={"grant_type": JWT_BEARER, "assertion": assertion or _assertion(c)})


def test_secret_deleted_on_one_host_is_refused_by_both_at_once(cluster):
    c = cluster
    added = cli(c["env"], "secret", "add", c["client_id"])
    for base in (c["a"], c["b"]):
        assert _token(base, c, added["client_secret"]).status_code == 200
    cli(c["env"], "secret", "delete", c["client_id"], added["secret_id"])
    for _ in range(4):
        for base in (c["a"], c["b"]):
            response = _token(base, c, added["client_secret"])
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_client"


def test_one_assertion_sent_to_both_hosts_at_once_yields_one_token(cluster):
    c = cluster
    secret = cli(c["env"], "secret", "add", c["client_id"])["client_secret"]
    for _ in range(15):
        assertion = _assertion(c)
        barrier = threading.Barrier(2)
        results: dict[str, requests.Response] = {}

        def send(name: str) -> None:
            barrier.wait(timeout=10)
            results[name] = _token(c[name], c, secret, assertion)

        threads = [threading.Thread(target=send, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [200, 400], statuses
        refused = next(r for r in results.values() if r.status_code == 400)
        assert refused.json()["error"] == "invalid_grant"


def test_token_from_one_host_introspects_and_revokes_on_the_other(cluster):
    c = cluster
    secret = cli(c["env"], "secret", "add", c["client_id"])["client_secret"]
    token = _token(c["a"], c, secret).json()["access_token"]
    auth = (c["client_id"], secret)
    active = requests.post(c["b"] + "/oauth/introspect", data={"token": token}, auth=auth, timeout=10).json()
    assert active["active"] is True and active["client_id"] == c["client_id"]
    assert requests.post(c["b"] + "/oauth/revoke", data={"token": token}, auth=auth, timeout=10).status_code == 200
    assert requests.post(c["a"] + "/oauth/introspect", data={"token": token}, auth=auth, timeout=10).json() == {
        "active": False
    }


def test_signing_key_rotated_on_one_host_is_served_by_both(cluster):
    c = cluster
    secret = cli(c["env"], "secret", "add", c["client_id"])["client_secret"]
    old_token = _token(c["b"], c, secret).json()["access_token"]
    new_kid = cli(c["env"], "signing-key", "rotate")["kid"]
    for base in (c["a"], c["b"]):
        kids = [k["kid"] for k in requests.get(base + "/oauth/jwks", timeout=10).json()["keys"]]
        assert new_kid in kids and jwt.get_unverified_header(old_token)["kid"] in kids
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    # Published at once, signing only after the activation delay (3 s here): the old key signs meanwhile.
    for base in (c["a"], c["b"]):
        assert jwt.get_unverified_header(_token(base, c, secret).json()["access_token"])["kid"] == old_kid
    time.sleep(3 + 1.5)  # the delay, plus AUTHSERVER_SIGNING_KEY_REFRESH=1 for the workers to re-read
    for base in (c["a"], c["b"]):
        for _ in range(3):
            fresh = _token(base, c, secret).json()["access_token"]
            assert jwt.get_unverified_header(fresh)["kid"] == new_kid
    auth = (c["client_id"], secret)
    assert (
        requests.post(c["a"] + "/oauth/introspect", data={"token": old_token}, auth=auth, timeout=10).json()["active"]
        is True
    )
