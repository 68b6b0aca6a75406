"""When the sync worker closes an answered connection at once, and when it leaves it to gunicorn's graceful
close; when it serves a connection at once and when it leaves it to wait in its poller
(authserver/sync_worker.py), on real connected sockets."""
from __future__ import annotations

import logging
import os
import socket
import ssl

import pytest
from gunicorn.config import Config

from authserver.sync_worker import KeepAliveSyncWorker, _Connection, _Served, close_if_nothing_unread, has_unread


@pytest.fixture
def connection():
    """A TCP connection on loopback: (the server's side, the client's side)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    yield server, client
    server.close()
    client.close()


def test_nothing_unread_closes_at_once_and_the_client_sees_a_clean_end(connection):
    server, client = connection
    server.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    close_if_nothing_unread(server)
    assert server.fileno() == -1
    client.settimeout(5)
    assert client.recv(1024).startswith(b"HTTP/1.1 200 OK")
    assert client.recv(1024) == b""  # FIN, not a reset


def test_unread_bytes_leave_the_connection_to_the_graceful_close(connection):
    server, client = connection
    client.sendall(b"GET /next HTTP/1.1\r\n\r\n")  # a pipelined request the worker has not read
    server.settimeout(5)
    assert server.recv(1, socket.MSG_PEEK) == b"G"  # it has arrived
    server.settimeout(None)
    close_if_nothing_unread(server)
    assert server.fileno() != -1
    assert server.recv(1024) == b"GET /next HTTP/1.1\r\n\r\n"  # still there, unconsumed by the look


def test_a_client_already_gone_closes_at_once(connection):
    server, client = connection
    client.close()
    close_if_nothing_unread(server)
    assert server.fileno() == -1


def test_a_tls_connection_is_left_to_gunicorn(connection):
    server, _ = connection
    wrapped = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).wrap_socket(server, server_side=True,
                                                                  do_handshake_on_connect=False)
    close_if_nothing_unread(wrapped)
    assert wrapped.fileno() != -1
    wrapped.close()


def test_a_connection_is_served_at_once_only_when_its_client_has_sent_something_or_gone(connection):
    server, client = connection
    assert has_unread(server) is False  # connected, nothing sent yet: it waits in the poller
    client.sendall(b"GET / HTTP/1.1\r\n")
    server.settimeout(5)
    assert server.recv(1, socket.MSG_PEEK) == b"G"
    assert has_unread(server) is True
    assert server.recv(1024) == b"GET / HTTP/1.1\r\n"  # the look consumed nothing
    client.close()
    assert has_unread(server) is True  # the end of the connection is served (and closed) at once too


def test_an_answered_connection_to_close_is_closed_once_and_counted_once(connection):
    """The worker's count of open connections (its limit, and what a graceful stop waits for) drops by one
    when it closes an answered connection that has nothing unread."""
    server, client = connection
    worker = KeepAliveSyncWorker(age=1, ppid=os.getpid(), sockets=[], app=None, timeout=30, cfg=Config(),
                                 log=logging.getLogger("test"))
    worker.nr_conns = 1
    conn = _Connection(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
    worker.finish_request(conn, _Served(False))  # the answer asked to close
    assert server.fileno() == -1
    assert worker.nr_conns == 0
    client.settimeout(5)
    assert client.recv(1) == b""  # a clean end, no reset


# --- one write per answer: the head goes out with the first body bytes -------------------------------------

class _Application:
    """What gunicorn's worker loads its WSGI callable from (`app.wsgi()`)."""

    def __init__(self, wsgi):
        self._wsgi = wsgi

    def wsgi(self):
        return self._wsgi


def _serve_one(wsgi, request: bytes) -> list[bytes]:
    """`request` served by the worker's own request handling (gunicorn's parser, the worker's response) on a
    socket that keeps each write apart (SOCK_SEQPACKET): the writes the client received, in order."""
    from gunicorn.glogging import Logger

    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    cfg = Config()
    worker = KeepAliveSyncWorker(age=1, ppid=os.getpid(), sockets=[], app=_Application(wsgi), timeout=30, cfg=cfg,
                                 log=Logger(cfg))
    worker.load_wsgi()
    client.sendall(request)
    conn = _Connection(cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
    conn.init()  # as the worker does before reading a request: blocking socket, HTTP/1 parser
    worker.handle_request(next(conn.parser), conn)
    server.close()
    client.settimeout(5)
    writes = []
    while chunk := client.recv(1 << 20):
        writes.append(chunk)
    client.close()
    return writes


def _answer(status: str, body: bytes, *, length: bool = True):
    def wsgi(environ, start_response):
        headers = [("Content-Type", "application/json")]
        if length:
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]
    return wsgi


def test_an_answer_with_a_body_reaches_the_client_in_one_write():
    body = b'{"access_token":"x","token_type":"Bearer"}'
    writes = _serve_one(_answer("200 OK", body), b"POST /oauth/token HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert len(writes) == 1, writes
    head, _, rest = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: %d" % len(body) in head and b"\r\nConnection: keep-alive" in head
    assert rest == body


@pytest.mark.parametrize("request_line, status", [(b"HEAD / HTTP/1.1", "200 OK"), (b"GET / HTTP/1.1", "204 No Content"),
                                                  (b"GET / HTTP/1.1", "304 Not Modified")])
def test_an_answer_without_a_body_still_sends_its_head_once(request_line, status):
    writes = _serve_one(_answer(status, b"", length=False), request_line + b"\r\nHost: a\r\n\r\n")
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 " + status.encode() + b"\r\n") and writes[0].endswith(b"\r\n\r\n")


def test_a_streamed_answer_sends_its_head_before_its_chunks():
    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first,"
        yield b"second"

    writes = _serve_one(wsgi, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, chunks = b"".join(writes).partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked" in head
    assert chunks == b"6\r\nfirst,\r\n6\r\nsecond\r\n0\r\n\r\n"
    assert writes[0] == head + b"\r\n\r\n"  # the head first, on its own: nothing of the body held back with it


def test_a_file_answer_sends_its_head_before_the_file(tmp_path):
    path = tmp_path / "icon.svg"
    path.write_bytes(b"<svg/>")

    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "image/svg+xml"), ("Content-Length", "6")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    writes = _serve_one(wsgi, b"GET /favicon.svg HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, body = b"".join(writes).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"<svg/>"
