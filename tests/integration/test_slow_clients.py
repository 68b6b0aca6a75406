"""Hundreds of idle and slowly-sending connections do not stop a live server serving others."""
from __future__ import annotations

import socket
import threading
import time
import uuid

import jwt
import pytest
import requests

from ..conftest import JWT_BEARER, PG_URL, fresh_pg_database
from ..servers import free_port, provision_client, running_server, server_env, setup_cli


def test_idle_and_slowloris_connections_do_not_stop_health_and_tokens(tmp_path):
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}", AUTHSERVER_WORKER_CLASS="gevent")
    setup_cli(env, "init")
    stop = threading.Event()
    held: list[socket.socket] = []

    def slowloris(sock: socket.socket):
        request = b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
        for byte in request:
            if stop.wait(0.5):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return

    with running_server(env, port, workers=2):
        for i in range(250):  # 200 idle (connected, nothing sent) and 50 sending a byte every half second
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(sock)
            if i >= 200:
                threading.Thread(target=slowloris, args=(sock,), daemon=True).start()
        time.sleep(1)
        try:
            outcomes = []
            for _ in range(10):
                started = time.monotonic()
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
                token = requests.post(f"http://127.0.0.1:{port}/oauth/token", data={"grant_type": "x"},
                                      auth=("c", "s"), timeout=3)
                outcomes.append((health.status_code, token.status_code, time.monotonic() - started))
            assert all(h == 200 and t == 400 for h, t, _ in outcomes), outcomes  # unsupported_grant_type: served
            assert max(elapsed for *_, elapsed in outcomes) < 3
            with requests.Session() as session:  # keep-alive works meanwhile
                answers = [session.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code for _ in range(20)]
            assert answers == [200] * 20
        finally:
            stop.set()
            for sock in held:
                sock.close()


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="needs AUTHSERVER_TEST_DATABASE_URL (set by .ci/run)")
def test_gevent_workers_on_postgresql_serve_more_concurrent_requests_than_the_pool_holds(tmp_path):
    """With gevent one worker serves many requests at once; hot-path connections take a bounded share
    of the pool, so a request never waits for a connection only another waiting request could free."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with fresh_pg_database("authserver_gevent") as url:
        env = server_env(tmp_path / "instance", issuer, AUTHSERVER_WORKER_CLASS="gevent", AUTHSERVER_DATABASE_URL=url)
        setup_cli(env, "init")
        d = provision_client(env, tmp_path)
        client, account, secret, key, kid = d["client"], d["account"], d["secret"], d["key"], d["kid"]
        with running_server(env, port, workers=1) as base:
            outcomes: list[object] = []
            lock = threading.Lock()

            def one_client():
                with requests.Session() as http:
                    for _ in range(15):
                        now = int(time.time())
                        assertion = jwt.encode(
                            {
                                "iss": client,
                                "sub": account,
                                "aud": issuer + "/oauth/token",
                                "iat": now,
                                "exp": now + 120,
                                "jti": uuid.uuid4().hex,
                            },
                            key,
                            algorithm="ES256",
                            headers={"kid": kid},
                        )
                        try:
                            status = http.post(
                                base + "/oauth/token",
                                data={"grant_type": JWT_BEARER, "assertion": assertion},
                                auth=(client, secret),
                                timeout=20,
                            ).status_code
                            listed = http.get(base + "/readyz", timeout=20).status_code  # a session of the ORM
                        except requests.RequestException as exc:
                            status, listed = type(exc).__name__, None
                        with lock:
                            outcomes.append((status, listed))

            threads = [threading.Thread(target=one_client) for _ in range(24)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            elapsed = time.monotonic() - started
    assert len(outcomes) == 24 * 15
    assert {o for o in outcomes} == {(200, 200)}, {o for o in outcomes}
    assert elapsed < 60, elapsed  # no request waited out a pool timeout (30 s)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset raises)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_sync_worker_is_free_once_its_answer_is_sent(tmp_path):
    """A client that reads its answer and keeps the connection open does not hold the sync worker: gunicorn's
    own close waits up to 2 s for such a client to close first, so three of them would have kept the only
    worker from a fourth request for 6 s."""
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}")
    setup_cli(env, "init")
    with running_server(env, port, workers=1) as base:
        holders = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        try:
            started = time.monotonic()
            for sock in holders:  # each reads its answer and the server's close, and keeps its own side open
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
            assert requests.get(base + "/healthz", timeout=10).status_code == 200
            elapsed = time.monotonic() - started
        finally:
            for sock in holders:
                sock.close()
    assert elapsed < 2, f"the worker waited for clients that keep their connection open ({elapsed:.1f} s)"
