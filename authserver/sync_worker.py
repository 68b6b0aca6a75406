"""The `sync` worker of `authserver serve`: one request at a time, connections kept alive.

gunicorn's own sync worker answers one request per connection and closes it, so every request pays a
new TCP connection (two more round trips, the kernel's work at both ends); clients that keep
connections alive (requests.Session, httpx, nginx with upstream keep-alive) cannot. Its close is also
graceful (RFC 9112 §9.6): it half-closes and reads until the client closes its side, for up to two
seconds, and serves nothing else meanwhile — a client that reads its answer and keeps the connection
open held the worker that long.

`KeepAliveSyncWorker` is gunicorn's threaded worker — its poller, keep-alive bookkeeping (`keepalive`
seconds idle), connection limit (`worker_connections`) and graceful stop — with the thread pool taken
out: the main loop serves a readable connection itself, so a request costs no hand-over between
threads, and a connection that is open but silent (kept alive, or accepted before its request
arrived) waits in the poller, not in the worker. A client that stops in the middle of its request
still holds the worker until it goes on or the worker times out, as with gunicorn's sync worker: a
buffering proxy in front, or the gevent worker, is the answer to slow senders.

An answered connection that is to be closed (the client asked, the server is stopping or draining)
is closed at once when the client has nothing unread on it, as nginx's `lingering_close auto` does;
otherwise — unread bytes, an error, TLS — gunicorn's graceful close runs.

An answer's status line and headers go out in the same write as its first body bytes (`OneWriteResponse`):
gunicorn writes them apart, two system calls and two TCP segments for every token, where one does."""
from __future__ import annotations

import errno
import socket
from collections import deque
from typing import Any

from gunicorn import util
from gunicorn.http.wsgi import Response
from gunicorn.workers.gthread import _DEFER, TConn, ThreadWorker

from authserver import lifecycle


def close_if_nothing_unread(sock: socket.socket) -> None:
    """Close `sock` now if the client has nothing unread on it; otherwise leave it open for a graceful close."""
    if type(sock) is not socket.socket:  # TLS and other wrappers: gunicorn's graceful close decides
        return
    try:
        unread = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:  # nothing unread, the client still connected: a close sends FIN, never a reset
        unread = b""
    except OSError:  # reset or otherwise gone: nothing left to protect
        unread = b""
    if unread:  # a pipelined request or an unread body: gunicorn drains it before closing
        return
    sock.close()


def has_unread(sock: socket.socket) -> bool:
    """Whether the client has sent something not yet read (or the connection already ended), without waiting."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # a byte, or b"" at the client's end
    except BlockingIOError:
        return False
    except OSError:  # reset: serving the connection reads the end and closes it
        return True
    return True


class _Served:
    """A request served on the worker's own thread, shaped as the future gunicorn's threaded worker expects."""

    __slots__ = ("_keep",)

    def __init__(self, keep: object) -> None:
        self._keep = keep

    def cancelled(self) -> bool:
        return False

    def result(self) -> object:
        return self._keep


class _Connection(TConn):
    """gunicorn's connection of the threaded worker, closed at once when the client has nothing unread."""

    def close(self, graceful: bool = False) -> None:
        if graceful:
            close_if_nothing_unread(self.sock)
            if self.sock.fileno() == -1:  # closed above; gunicorn's close would fail on it (and the worker
                return  # would then count the connection as closed twice)
        super().close(graceful)


class OneWriteResponse(Response):
    """gunicorn's HTTP/1 response, its head held back until the first body bytes and sent with them.

    The head counts as sent once composed (`headers_sent`: no second head, and a failure after it closes the
    connection); it reaches the socket with the first body bytes, or before a chunk, a file or the end."""

    headers_sent: bool
    _head: bytes | None = None
    _hold = True

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = self.default_headers()
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        self._head = ("".join(lines) + "\r\n").encode("latin-1")
        self.headers_sent = True
        if not self._hold:
            self.flush_head()

    def flush_head(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            self.sock.sendall(head)

    def _emit_body(self, data: bytes) -> None:
        if self._head is not None and not self.chunked:
            head, self._head = self._head, None
            self.sock.sendall(head + data)
            return
        self.flush_head()  # a chunk is framed on its own: the head goes first
        util.write(self.sock, data, self.chunked)

    def sendfile(self, respiter: Any) -> bool:
        self._hold = False  # the kernel sends the file itself: the head goes out before it
        self.flush_head()
        return bool(super().sendfile(respiter))

    def close(self) -> None:
        self.send_headers()
        self.flush_head()  # an answer without body bytes (HEAD, 204, 304, an empty body)
        super().close()


class KeepAliveSyncWorker(ThreadWorker):
    """Serves one request at a time on its own thread and keeps answered connections alive (module docstring)."""

    wsgi: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ready: deque[_Connection] = deque()
        self._serving = False

    def accept(self, listener: socket.socket) -> None:
        try:
            client, addr = listener.accept()
        except OSError as e:  # another worker took it, or the client gave up already
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = _Connection(self.cfg, client, addr, listener.getsockname())
        if has_unread(client):  # the request is here already (the usual case): serve it now
            conn.data_ready = True
            self.enqueue_req(conn)
        else:  # wait in the poller, up to the keep-alive time, for the request to begin
            self.finish_request(conn, _Served(_DEFER))

    def enqueue_req(self, conn: _Connection) -> None:
        """Serve the connection's request now; a request read ahead behind it is served next, in this loop."""
        self._ready.append(conn)
        if self._serving:  # called from finish_request below: the loop serves it, no recursion
            return
        self._serving = True
        try:
            while self._ready:
                ready = self._ready.popleft()
                self.finish_request(ready, _Served(self.handle(ready)))
        finally:
            self._serving = False

    def load_wsgi(self) -> None:
        super().load_wsgi()
        application = self.wsgi

        def one_write(environ: dict, start_response: Any) -> Any:
            # gunicorn's threaded worker makes a plain Response for HTTP/1 requests; its start_response is
            # bound to it. Only that exact class is switched: HTTP/2's own response, or another, is left as is.
            response = getattr(start_response, "__self__", None)
            if type(response) is Response:
                response.__class__ = OneWriteResponse
            return application(environ, start_response)

        self.wsgi = one_write

    def handle_request(self, req: Any, conn: Any) -> bool:
        if lifecycle.draining():  # going away: each answer tells its client to take its next request elsewhere
            req.must_close = True
        return bool(super().handle_request(req, conn))
