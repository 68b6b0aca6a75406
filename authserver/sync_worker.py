"""gunicorn's sync worker, closing an answered connection at once when the client has nothing more to send.

gunicorn's sync worker serves one request per connection, then closes it gracefully (RFC 9112 §9.6):
it half-closes and reads until the client closes its side, for up to two seconds, so that unread request
bytes cannot make the kernel answer with a reset that destroys the response in flight. When the client
has sent everything — the usual case — there is nothing to protect, yet the worker, which serves nothing
else meanwhile, waits for the client's FIN: a round trip through the client's event loop under load, and
two whole seconds for a client that reads its answer and keeps the connection open. A client doing that
once per worker every two seconds would stop the server.

This worker looks first, without waiting: when nothing is left unread on the connection after a
complete answer (the request and its body were read whole, no pipelined request follows), it closes at
once, as nginx's `lingering_close auto` does; otherwise — unread bytes, an error, TLS — gunicorn's own
graceful close runs as before. Everything else is gunicorn's sync worker."""
from __future__ import annotations

import socket

from gunicorn.workers.sync import SyncWorker


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


class PromptCloseSyncWorker(SyncWorker):
    """gunicorn's sync worker; an answered connection with nothing unread is closed without lingering.

    gunicorn's graceful close then finds the socket closed and does nothing more (its half-close of a closed
    socket fails, which it treats as nothing to drain)."""

    def handle_request(self, listener, req, client, addr):
        super().handle_request(listener, req, client, addr)
        close_if_nothing_unread(client)
