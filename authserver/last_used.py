"""When each client secret was last used: recorded in memory by the request, written in batches by a
thread of the worker, never inside a request.

A request that authenticates a client therefore writes nothing for this bookkeeping, so
introspection and revocation keep working on a database that takes no writes (read-only, full),
and the token endpoint's transaction holds only what it must. The times are to the minute
(RESOLUTION) and reach the database within FLUSH_SECONDS; a worker killed with SIGKILL loses at most
that long of them (a graceful exit writes what is pending)."""
from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
import weakref

from . import store, token_store
from .outages import note_outage, outage_component

RESOLUTION = 60  # seconds: a secret's last-used time is rewritten at most once a minute
FLUSH_SECONDS = 5.0
MAX_PENDING = 100_000  # bounded memory while the database refuses writes

_log = logging.getLogger(__name__)


def _flush_at_exit(recorder: weakref.ref[LastUsedRecorder]) -> None:
    alive = recorder()
    if alive is not None:
        alive.flush()


class LastUsedRecorder:
    def __init__(self, app, flush_seconds: float = FLUSH_SECONDS):
        # Held weakly: the recorder is reachable from the database engine (its dispose listener), which
        # Flask-SQLAlchemy keeps per application in a weak-keyed map; a strong reference back to the
        # application would keep every application of the process alive.
        self._app = weakref.ref(app)
        self._flush_seconds = flush_seconds
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._thread_pid: int | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._watched_engines: set[int] = set()

    def record(self, secret_id: str, now: int, stored: int | None) -> None:
        """Note a use of the secret at `now`; `stored` is the time the database holds."""
        if stored is not None and now - stored < RESOLUTION:
            return
        with self._lock:
            known = self._pending.get(secret_id)
            if known is not None and known >= now:
                return
            if known is None and len(self._pending) >= MAX_PENDING:
                return
            self._pending[secret_id] = now
        if self._thread_pid != os.getpid():
            self._start()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write what is pending in one transaction; on failure keep it for the next round. Returns
        how many secrets were written. Runs on a connection of its own, never a request's."""
        return contextvars.Context().run(self._flush)

    def _flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            app = self._app()
            if app is None:  # the application is gone, and its database with it
                return 0
            try:
                with app.app_context():
                    try:
                        with store.write_section():
                            token_store.touch_secrets(sorted(batch.items()))
                            store.commit()
                    finally:
                        store.release()
            except Exception as exc:
                with self._lock:
                    for secret_id, at in batch.items():
                        if self._pending.get(secret_id, -1) < at and len(self._pending) < MAX_PENDING:
                            self._pending[secret_id] = at
                component = outage_component(exc)
                if component is not None:
                    note_outage(component, exc)
                else:
                    _log.exception("recording last-used times of client secrets failed")
                return 0
            return len(batch)

    def _start(self) -> None:
        from sqlalchemy import event

        from .extensions import db

        with self._lock:
            pid = os.getpid()
            if self._thread_pid == pid:
                return
            self._thread_pid = pid  # a forked worker starts its own thread: threads do not survive fork
            self._wake = threading.Event()
            self._stopped = threading.Event()
            engine = db.engine
            if id(engine) not in self._watched_engines:
                self._watched_engines.add(id(engine))
                event.listen(engine, "engine_disposed", self._engine_disposed)
        threading.Thread(target=self._run, args=(self._wake, self._stopped), name="authserver-last-used",
                         daemon=True).start()
        atexit.register(_flush_at_exit, weakref.ref(self))

    def _engine_disposed(self, engine) -> None:
        """The application closed its database connections for good (its end, in tests): stop, and
        open no new connection for what is pending."""
        with self._lock:
            self._pending.clear()
            self._thread_pid = None
            self._stopped.set()
            self._wake.set()

    def _run(self, wake: threading.Event, stopped: threading.Event) -> None:
        while not stopped.is_set():
            wake.wait(self._flush_seconds)
            if stopped.is_set():
                return
            self.flush()
