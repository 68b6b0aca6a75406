"""The "Signing key compromise" runbook of docs/deployment.md, step by step, through the command line
against a live `authserver serve` with two workers (AUTHSERVER_SIGNING_KEY_REFRESH=1), on SQLite and,
when configured, PostgreSQL.

Which worker answered is read from the per-process Prometheus files the workers write: each counts
the requests it served by endpoint and status."""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.mmap_dict import MmapedDict

from ..conftest import JWT_BEARER, PG_URL, fresh_pg_database, public_pem
from ..servers import cli, free_port, running_server, server_env, setup_cli

REFRESH = 1
PARALLEL = 4


def per_worker(instance: Path, port: int, endpoint: str) -> Counter:
    """{pid: requests served} for one endpoint, from each worker's own metrics file."""
    counts = Counter()
    for path in (instance / f"prometheus-{port}").glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "authserver_http_requests_total" and labels.get("endpoint") == endpoint:
                counts[pid] += value
    return counts


@pytest.fixture(params=["sqlite", "postgresql"] if PG_URL else ["sqlite"])
def database(request):
    """The deployment's database URL: the instance's SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_pg_database("authserver_runbook") as url:
        yield url


@pytest.fixture
def deployment(tmp_path, database):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    instance = tmp_path / "instance"
    extra = {"AUTHSERVER_DATABASE_URL": database} if database else {}
    env = server_env(instance, issuer, AUTHSERVER_SIGNING_KEY_REFRESH=str(REFRESH), **extra)
    setup_cli(env, "init")
    org = setup_cli(env, "org", "create", "Acme")["org_id"]
    account = setup_cli(env, "account", "create", org, "worker", "--kind", "service")["account_id"]
    client_id = setup_cli(env, "client", "create", org, "Backend")["client_id"]
    setup_cli(env, "client", "grant", client_id, issuer, "--scope", "read")  # the default API (AUTHSERVER_AUDIENCE)
    secret = setup_cli(env, "secret", "add", client_id)["client_secret"]
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "client.pub.pem").write_bytes(public_pem(key))
    kid = setup_cli(env, "key", "add", client_id, str(tmp_path / "client.pub.pem"), "--kid", "k1")["kid"]
    with running_server(env, port, workers=2, log_path=tmp_path / "server.log") as base:
        yield Deployment(env, base, instance, port, issuer, client_id, secret, account, key, kid)


class Deployment:
    def __init__(self, env, base, instance, port, issuer, client_id, secret, account, key, kid):
        self.env, self.base, self.instance, self.port, self.issuer = env, base, instance, port, issuer
        self.client_id, self.secret, self.account, self.key, self.kid = client_id, secret, account, key, kid

    def operator(self, *args):
        return cli(self.env, "signing-key", *args)

    def token(self) -> str:
        now = int(time.time())
        assertion = jwt.encode({"iss": self.client_id, "sub": self.account, "aud": self.issuer + "/oauth/token",
                                "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
                               self.key, algorithm="ES256", headers={"kid": self.kid})
        response = requests.post(self.base + "/oauth/token", data={"grant_type": JWT_BEARER, "assertion": assertion},
                                 auth=(self.client_id, self.secret), timeout=10)
        assert response.status_code == 200, response.text[:300]
        return response.json()["access_token"]

    def introspect(self, token: str) -> dict:
        response = requests.post(self.base + "/oauth/introspect", data={"token": token},
                                 auth=(self.client_id, self.secret), timeout=10)
        assert response.status_code == 200, response.text[:300]
        return response.json()

    def introspect_on_both_workers(self, token: str) -> list[dict]:
        """Answers to concurrent introspections over fresh connections, until both workers answered."""
        answers = []
        # gevent workers each accept as many connections as arrive, so a round may land on one worker.
        for _ in range(30):
            before = per_worker(self.instance, self.port, "/oauth/introspect")
            with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
                answers += list(pool.map(lambda _: self.introspect(token), range(12), timeout=60))
            served = per_worker(self.instance, self.port, "/oauth/introspect") - before
            if len([pid for pid, n in served.items() if n > 0]) == 2:
                return answers
        pytest.fail(f"one worker answered every introspection: {dict(served)}")

    def published(self) -> set[str]:
        response = requests.get(self.base + "/oauth/jwks", timeout=10)
        assert response.status_code == 200
        return {key["kid"] for key in response.json()["keys"]}


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def test_signing_key_compromise_runbook(deployment):
    d = deployment
    old_token = d.token()
    old_kid = kid_of(old_token)
    # Both workers know the old token as valid (and remember its verified signature).
    assert all(a["active"] is True for a in d.introspect_on_both_workers(old_token))

    # 1. Find the key.
    [entry] = d.operator("list")
    assert entry["kid"] == old_kid and entry["state"] == "signing"

    # 2. Rotate at once.
    new_kid = d.operator("rotate", "--now")["kid"]
    assert new_kid != old_kid
    assert {e["kid"]: e["state"] for e in d.operator("list")} == {new_kid: "signing", old_kid: "retired"}
    assert d.published() == {old_kid, new_kid}
    assert d.introspect(old_token)["active"] is True  # retired, not withdrawn

    # 3. Wait for the refresh interval: every worker signs with the new key.
    time.sleep(REFRESH + 1.2)
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        fresh = list(pool.map(lambda _: d.token(), range(12), timeout=60))
    assert {kid_of(t) for t in fresh} == {new_kid}

    # 4. Withdraw the old key.
    withdrawn = d.operator("withdraw", old_kid)
    assert withdrawn["kid"] == old_kid and withdrawn["state"] == "withdrawn" and withdrawn["withdrawn_at"]
    for _ in range(6):  # whichever worker answers
        assert d.published() == {new_kid}
    assert all(a == {"active": False} for a in d.introspect_on_both_workers(old_token))
    new_token = d.token()
    assert kid_of(new_token) == new_kid
    assert all(a["active"] is True and a["client_id"] == d.client_id for a in d.introspect_on_both_workers(new_token))
    assert all(d.introspect(t)["active"] is True for t in fresh[:3])
    assert {e["kid"]: e["state"] for e in d.operator("list")} == {new_kid: "signing", old_kid: "withdrawn"}
