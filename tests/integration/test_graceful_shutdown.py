"""SIGTERM to a live `authserver serve` under load: /readyz turns 503 at once, every request sent
before the signal (and during the drain time) is answered, every delivered token is stored, and no
process outlives the master."""
from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
import uuid

import jwt
import pytest
import requests

from ..servers import free_port, master_pid, provision_client, running_server, server_env, setup_cli

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def alive(pid) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
DRAIN = 2  # long enough for tens of requests during the drain; the load costs both cores meanwhile


@pytest.fixture
def setup(tmp_path):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = server_env(tmp_path / "instance", issuer, AUTHSERVER_DRAIN_SECONDS=str(DRAIN))
    setup_cli(env, "init")
    made = provision_client(env, tmp_path)
    return {**made, "env": env, "port": port, "issuer": issuer, "db": tmp_path / "instance" / "authserver.db"}


@pytest.mark.parametrize("connections", ["new per request", "kept alive"])
def test_sigterm_under_load_answers_every_request_sent_before_it(setup, connections):
    """Clients on fresh connections, or each on a connection it keeps alive (requests.Session): while the
    server drains, its answers say `Connection: close`, so no client sends on a connection the server closes."""
    results: list[tuple[float, object]] = []  # (time the request was sent, status code or exception name)
    closing: list[tuple[float, str]] = []  # (time sent, the answer's Connection header)
    stop = threading.Event()
    lock = threading.Lock()

    def load():
        http = requests.Session() if connections == "kept alive" else requests
        while not stop.is_set():
            now = int(time.time())
            assertion = jwt.encode(
                {
                    "iss": setup["client"],
                    "sub": setup["account"],
                    "aud": setup["issuer"] + "/oauth/token",
                    "iat": now,
                    "exp": now + 120,
                    "jti": uuid.uuid4().hex,
                },
                setup["key"],
                algorithm="ES256",
                headers={"kid": setup["kid"]},
            )
            sent = time.monotonic()
            try:
                response = http.post(f"http://127.0.0.1:{setup['port']}/oauth/token",
                                     data={"grant_type": JWT_BEARER, "assertion": assertion},
                                     auth=(setup["client"], setup["secret"]), timeout=30)
                outcome = (response.status_code, response.json().get("access_token"))
                with lock:
                    closing.append((sent, response.headers.get("Connection", "")))
            except requests.RequestException as exc:
                outcome = (type(exc).__name__, None)
            with lock:
                results.append((sent, outcome))
            if outcome[0] == "ConnectionError" and time.monotonic() > sent:
                time.sleep(0.05)

    with running_server(setup["env"], setup["port"], workers=2, log_path=setup["db"].parent.parent / "server.log"):
        master = master_pid(setup['port'])
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True
        ).stdout.split()
        # four clients keep both workers busy and requests queued: more only burn the cores the server needs
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        signalled = time.monotonic()
        subprocess.run(["kill", "-TERM", str(master)], check=True)
        time.sleep(0.5)
        ready = requests.get(f"http://127.0.0.1:{setup['port']}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        deadline = time.monotonic() + DRAIN + 25
        while time.monotonic() < deadline:
            if not alive(master):
                break
            time.sleep(0.1)
        exited = time.monotonic()
        stop.set()
        for t in threads:
            t.join(timeout=40)
    assert exited - signalled < DRAIN + 25, "the master did not exit"
    assert exited - signalled >= DRAIN - 0.5, "the master stopped before the drain time"
    before = [outcome for sent, outcome in results if sent < signalled]
    during = [outcome for sent, outcome in results if signalled <= sent < signalled + DRAIN - 0.5]
    assert len(before) > 10 and len(during) > 10, (len(before), len(during))
    failed = [o for o in before + during if o[0] != 200]
    assert failed == [], failed[:5]
    if connections == "kept alive":
        assert {c for sent, c in closing if sent < signalled - 0.2} == {"keep-alive"}
        assert {c for sent, c in closing if signalled + 0.3 < sent} == {"close"}
    # Nothing lost: every delivered token has its record.
    delivered = [o[1] for _, o in results if o[0] == 200]
    with sqlite3.connect(setup["db"]) as conn:
        stored = {row[0] for row in conn.execute("SELECT jti FROM access_tokens")}
    assert {jwt.decode(t, options={"verify_signature": False})["jti"] for t in delivered} <= stored
    # No worker or purger outlived the master.
    assert [pid for pid in children if alive(pid)] == []


def test_a_graceful_exit_writes_the_pending_last_used_times(setup):
    """Last-used times wait in the worker's memory for a few seconds; SIGTERM must not lose them."""
    with running_server(setup["env"], setup["port"], workers=1) as base:
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": setup["client"],
                "sub": setup["account"],
                "aud": setup["issuer"] + "/oauth/token",
                "iat": now,
                "exp": now + 120,
                "jti": uuid.uuid4().hex,
            },
            setup["key"],
            algorithm="ES256",
            headers={"kid": setup["kid"]},
        )
        response = requests.post(base + "/oauth/token", data={"grant_type": JWT_BEARER, "assertion": assertion},
                                 auth=(setup["client"], setup["secret"]), timeout=30)
        assert response.status_code == 200
        with sqlite3.connect(setup["db"]) as conn:
            assert conn.execute("SELECT last_used_at FROM client_secrets").fetchone()[0] is None  # not in the request
    # running_server ended with SIGTERM and waited for the exit
    with sqlite3.connect(setup["db"]) as conn:
        used = conn.execute("SELECT last_used_at FROM client_secrets").fetchone()[0]
    assert used is not None and abs(used - now) <= 5
