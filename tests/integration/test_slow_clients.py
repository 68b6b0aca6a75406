"""Hundreds of idle and slowly-sending connections do not stop a live server serving others."""
from __future__ import annotations

import re
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


ROUNDS = 6


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

            # 24 clients at once, more than the pool's 10 connections (5 + 5 overflow), for six rounds each.
            def one_client():
                with requests.Session() as http:
                    for _ in range(ROUNDS):
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
    assert len(outcomes) == 24 * ROUNDS
    assert {o for o in outcomes} == {(200, 200)}, {o for o in outcomes}
    assert elapsed < 60, elapsed  # no request waited out a pool timeout (30 s)


def read_answer(sock: socket.socket) -> tuple[bytes, dict[str, str]]:
    """One HTTP/1.1 answer with a Content-Length from `sock`: its status line and headers (lower-cased names)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of an answer"
        body += chunk
    assert len(body) == int(headers["content-length"]), "more bytes than one answer"
    return status.encode(), headers


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def test_a_sync_worker_serves_others_while_connections_stay_open(tmp_path):
    """With one sync worker: three connections that sent nothing yet, three kept alive after their answer
    and one closed at its client's request hold nothing — another client is answered at once — and each
    kept-alive connection serves its next request. gunicorn's own sync worker reads a silent connection
    until it times out (30 s), and closes a connection after each answer, waiting up to 2 s for the client
    to close first."""
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}")
    setup_cli(env, "init")
    with running_server(env, port, workers=1) as base:
        silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        kept = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        closing = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            started = time.monotonic()
            # A client that asks to close and keeps its own side open: the server closes at once, where
            # gunicorn's own close waits up to 2 s for the client to close first.
            closing.sendall(HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
            status, headers = read_answer(closing)
            assert status.startswith(b"HTTP/1.1 200 ") and headers["connection"] == "close"
            assert closing.recv(1) == b""  # the server's FIN
            for sock in kept:
                sock.sendall(HEALTH)
                status, headers = read_answer(sock)
                assert status.startswith(b"HTTP/1.1 200 ") and headers["connection"] == "keep-alive"
            assert requests.get(base + "/healthz", timeout=10).status_code == 200
            elapsed = time.monotonic() - started
            for sock in kept:  # the same connections, a second request each
                sock.sendall(HEALTH)
                assert read_answer(sock)[0].startswith(b"HTTP/1.1 200 ")
            silent[0].sendall(HEALTH)  # a connection silent until now is served when its request comes
            assert read_answer(silent[0])[0].startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in [*silent, *kept, closing]:
                sock.close()
    assert elapsed < 2, f"the worker waited on open connections ({elapsed:.1f} s)"


def test_pipelined_requests_are_all_answered_in_order(tmp_path):
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}")
    setup_cli(env, "init")
    with running_server(env, port, workers=1):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(HEALTH + b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                         + b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):  # the third asked the server to close after its answer
                received += chunk
    statuses = re.findall(rb"HTTP/1\.1 \d{3} [A-Z ]+(?=\r\n)", received)
    assert statuses == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 404 NOT FOUND"], received[:600]
    assert b'"status":"ready"' in received or b'"status": "ready"' in received


def test_idle_connections_are_closed_after_the_keepalive_time(tmp_path):
    """A kept-alive or silent connection costs the server a file descriptor only until `keepalive` (here 1 s)."""
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}", GUNICORN_CMD_ARGS="--keep-alive 1")
    setup_cli(env, "init")
    with running_server(env, port, workers=1):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as kept, \
                socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
            kept.sendall(HEALTH)
            assert read_answer(kept)[0].startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            assert kept.recv(1) == b""  # the server's FIN, not a reset and not the 10 s client timeout
            assert silent.recv(1) == b""
            elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 4, elapsed
