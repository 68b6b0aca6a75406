"""A live server: `authserver serve` with 2 gunicorn workers, set up with the CLI, driven through a
third-party OAuth client library (requests-oauth2client). A secret deleted with the CLI is refused
by both workers on the very next requests, while a token it obtained stays active.

Which worker answered is read from the per-process Prometheus files (`<pid>.db`) the workers write in
multiprocess mode: each worker counts the tokens it issued and the errors it returned."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
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
from requests_oauth2client import BearerToken, ClientSecretBasic, OAuth2Client
from requests_oauth2client.exceptions import InvalidClient

from ..conftest import private_pem, public_pem

BIN = Path(sys.executable).parent
AUTHSERVER = BIN / "authserver"
STARTUP_TIMEOUT = 45
PARALLEL = 4
ORDERS_API = "https://orders.acme.test/api"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Live:
    def __init__(self, tmp_path: Path):
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.instance = tmp_path / "instance"
        self.log = tmp_path / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSERVER_", "PROMETHEUS_"))}
        self.env = {**env, "AUTHSERVER_INSTANCE_PATH": str(self.instance), "AUTHSERVER_ISSUER": self.issuer,
                    "AUTHSERVER_DRAIN_SECONDS": "0",
                    # Refusals are sent in rounds until both workers answered some (gevent workers each
                    # accept as many connections as arrive): keep the failure limit out of the way.
                    "AUTHSERVER_RATE_LIMIT_AUTH_FAILURES_PER_CLIENT": "1000"}
        self.process: subprocess.Popen | None = None

    def cli(self, *args) -> dict | list:
        result = subprocess.run([str(AUTHSERVER), *map(str, args), "--json"], env=self.env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, (args, result.stderr[-800:])
        return json.loads(result.stdout)

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(AUTHSERVER), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.issuer + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"server not ready within {STARTUP_TIMEOUT}s:\n{self.log_tail()}")
        # Both workers booted (each writes its Prometheus file when it loads the app).
        while time.monotonic() < deadline and len(self.worker_files()) < 2:
            time.sleep(0.2)
        assert len(self.worker_files()) >= 2, self.log_tail()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # gunicorn's master stops its workers gracefully
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the session this test started, by its id
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    # -- which worker answered --------------------------------------------------------------

    def worker_files(self) -> list[Path]:
        return sorted((self.instance / f"prometheus-{self.port}").glob("counter_*.db"))

    def per_worker(self, metric: str, **labels) -> Counter:
        """{pid: value} of one labelled counter, from each worker's own file."""
        counts = Counter()
        for path in self.worker_files():
            pid = int(path.stem.rsplit("_", 1)[1])
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
                _, name, key_labels, _ = json.loads(key)
                if name == metric and key_labels == labels:
                    counts[pid] += value
        return counts


@pytest.fixture
def live(tmp_path):
    server = Live(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _assertion(setup: dict, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": setup["client_id"], "sub": setup["account_id"], "aud": audience, "iat": now, "exp": now + 120,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, setup["private_key"], algorithm="ES256", headers={"kid": setup["kid"]})


def _oauth_client(live: Live, client_id: str, secret: str) -> OAuth2Client:
    """A fresh client (and connection) per call, configured from the server's RFC 8414 metadata."""
    return OAuth2Client.from_discovery_endpoint(
        url=live.issuer + "/.well-known/oauth-authorization-server", issuer=live.issuer,
        auth=ClientSecretBasic(client_id, secret), session=requests.Session(), testing=True,  # plain http on loopback
    )


def _token_request(live: Live, setup: dict, secret: str):
    """One JWT bearer token request: the BearerToken, or the library's exception."""
    client = _oauth_client(live, setup["client_id"], secret)
    try:
        # RFC 8707 resource: the client has no default API, so the token names its API explicitly.
        return client.jwt_bearer(_assertion(setup, client.token_endpoint), scope="read", resource=ORDERS_API)
    except InvalidClient as exc:
        return exc
    finally:
        client.session.close()


def _batch(live: Live, setup: dict, secret: str, n: int) -> list:
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(lambda _: _token_request(live, setup, secret), range(n), timeout=120))


def _workers(per_worker: Counter) -> int:
    return len([pid for pid, n in per_worker.items() if n > 0])


def test_deleted_secret_is_refused_by_both_workers_at_once(live, tmp_path):
    # Set up with the CLI, as an operator does.
    live.cli("init")
    org_id = live.cli("org", "create", "Acme")["org_id"]
    account_id = live.cli("account", "create", org_id, "worker", "--kind", "service")["account_id"]
    client_id = live.cli("client", "create", org_id, "Backend")["client_id"]
    live.cli("api", "create", "--org", org_id, "Orders", ORDERS_API, "--scope", "read", "--scope", "write")
    live.cli("client", "grant", client_id, ORDERS_API, "--scope", "read write", "--no-default")
    doomed = live.cli("secret", "add", client_id)
    keeper = live.cli("secret", "add", client_id)
    private_key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "client.pub.pem"
    key_file.write_bytes(public_pem(private_key))
    (tmp_path / "client.pem").write_bytes(private_pem(private_key))
    kid = live.cli("key", "add", client_id, key_file, "--kid", "live-1")["kid"]
    setup = {"client_id": client_id, "account_id": account_id, "private_key": private_key, "kid": kid}

    live.start()
    issued_by_worker = lambda: live.per_worker("authserver_tokens_issued_total", auth_method="client_secret_basic")  # noqa: E731
    refused_by_worker = lambda: live.per_worker("authserver_oauth_errors_total", error="invalid_client")  # noqa: E731

    # ~20 token requests over fresh connections, several at a time, shared by the two workers
    # (a few more if the kernel happened to hand them all to one worker).
    tokens = _batch(live, setup, doomed["client_secret"], 20)
    for _ in range(15):
        if _workers(issued_by_worker()) == 2:
            break
        tokens += _batch(live, setup, doomed["client_secret"], 20)
    assert all(isinstance(t, BearerToken) for t in tokens), [
        repr(t)[:120] for t in tokens if not isinstance(t, BearerToken)
    ]
    assert all(t.scope == "read" and t.expires_in and t.expires_in > 3500 for t in tokens)
    issued = issued_by_worker()
    assert sum(issued.values()) == len(tokens) and _workers(issued) == 2, (dict(issued), live.log_tail())

    early_token = tokens[0]
    assert jwt.get_unverified_header(early_token.access_token)["typ"] == "at+jwt"
    claims = jwt.decode(early_token.access_token, options={"verify_signature": False})
    assert claims["aud"] == ORDERS_API and claims["org_id"] == org_id

    # Delete the secret through the CLI (another process, straight to the database).
    assert live.cli("secret", "delete", client_id, doomed["secret_id"]) == {"deleted": doomed["secret_id"]}
    assert [s["secret_id"] for s in live.cli("secret", "list", client_id)] == [keeper["secret_id"]]

    # The very next requests, on fresh connections to either worker, are all refused.
    before = refused_by_worker()
    refusals = _batch(live, setup, doomed["client_secret"], 10)
    for _ in range(15):
        if _workers(refused_by_worker() - before) == 2:
            break
        refusals += _batch(live, setup, doomed["client_secret"], 10)
    assert all(isinstance(r, InvalidClient) for r in refusals), [repr(r)[:120] for r in refusals]
    assert all(r.error == "invalid_client" for r in refusals)
    refused = refused_by_worker() - before
    assert sum(refused.values()) == len(refusals), refused
    assert _workers(refused) == 2, (f"only one worker answered: {dict(refused)}", live.log_tail())

    # A token the deleted secret obtained is still active, introspected with the other secret...
    introspector = _oauth_client(live, client_id, keeper["client_secret"])
    answer = introspector.introspect_token(early_token)
    assert answer["active"] is True, {k: answer.get(k) for k in ("active", "client_id")}
    assert answer["client_id"] == client_id and answer["sub"] == account_id and answer["scope"] == "read"
    # ...and the other secret still obtains tokens from both workers.
    fresh = _batch(live, setup, keeper["client_secret"], 4)
    assert all(isinstance(t, BearerToken) for t in fresh), [repr(t)[:120] for t in fresh]

    # The old secret cannot introspect or revoke either.
    response = requests.post(live.issuer + "/oauth/introspect", data={"token": early_token.access_token},
                             auth=(client_id, doomed["client_secret"]), timeout=10)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    log = live.log.read_text(errors="replace")
    assert doomed["client_secret"][3:19] not in log and keeper["client_secret"][3:19] not in log  # no secret logged
