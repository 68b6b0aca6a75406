"""Hundreds of idle and slowly-sending connections do not stop a live server serving others."""
from __future__ import annotations

import socket
import threading
import time

import requests

from ..servers import cli, free_port, running_server, server_env


def test_idle_and_slowloris_connections_do_not_stop_health_and_tokens(tmp_path):
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}", AUTHSERVER_WORKER_CLASS="gevent")
    cli(env, "init")
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
