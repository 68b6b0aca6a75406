"""gunicorn settings for `authserver serve` (each can be overridden on the command line)."""
import multiprocessing
import os

from authserver.config import load_settings

_settings = load_settings()  # the settings are the one way configuration enters, here too

bind = "127.0.0.1:8000"
workers = _settings.workers or min(multiprocessing.cpu_count() * 2, 8)
# AUTHSERVER_WORKER_CLASS: sync (the default: one request at a time per worker, connections kept alive,
# the lowest tail latency; for a server behind a proxy that buffers requests) or gevent (slowly-sending
# connections wait in greenlets, so hundreds of them do not stop others being served; a longer tail under
# load): bench/slowclients/README.md. With gevent, keepalive also bounds how long a request head may take.
# sync is gunicorn's threaded worker serving on its own thread (authserver/sync_worker.py): answered and
# silent connections wait in its poller for up to keepalive seconds, at most worker_connections of them.
worker_class = {"sync": "authserver.sync_worker.KeepAliveSyncWorker"}.get(_settings.worker_class,
                                                                          _settings.worker_class)
worker_connections = 1000
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 0
# Never preload the application: each worker makes its own (connections, threads, caches) after the fork.
# With sync workers the master has imported the application's modules (`authserver serve` runs gunicorn in
# its own process), so a worker starts in milliseconds; with gevent, `serve` starts gunicorn in a fresh
# interpreter, because gevent patches each worker before the application's modules (and locks) are imported.
# The application writes its own structured access log (path only, no query string, no bodies).
accesslog = None
errorlog = "-"
loglevel = "info"
preload_app = False
# No runtime control socket: several servers may run side by side on one host.
control_socket_disable = True


def child_exit(server, worker):
    # prometheus_client's own variable, set by `authserver serve` for its workers: not a setting.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# Expired token records and used assertion ids are purged by a separate process, never on the
# request path. AUTHSERVER_PURGE_INTERVAL=0 turns it off (e.g. when a cron job runs `authserver purge`).
_purger = None


def _die_with_parent():
    """Runs in the purger before exec: the kernel sends it SIGTERM when the master dies, even by SIGKILL."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the purger's own parent check ends it instead
        pass


def on_starting(server):
    """SIGTERM drains: /readyz turns 503 at once, serving goes on for AUTHSERVER_DRAIN_SECONDS, then
    the usual graceful stop (workers finish their current request, up to graceful_timeout)."""
    import time
    import types

    from authserver import lifecycle

    lifecycle.prepare()
    drain = _settings.drain_seconds
    state = {"until": None}

    def handle_term(arbiter):
        if state["until"] is None:
            lifecycle.start_draining()
            state["until"] = time.monotonic() + drain
            arbiter.log.info("SIGTERM: draining for %s s (/readyz answers 503), then stopping", drain)
        if drain <= 0:
            raise StopIteration

    original_manage = server.manage_workers

    def manage_workers(arbiter):
        if state["until"] is not None and time.monotonic() >= state["until"]:
            raise StopIteration  # the run loop then stops gracefully
        original_manage()

    server.handle_term = types.MethodType(handle_term, server)
    server.manage_workers = types.MethodType(manage_workers, server)


def post_fork(server, worker):
    # A worker whose master is killed (SIGKILL) stops at once instead of at its next timeout check.
    _die_with_parent()
    # SQLite: a sync worker checkpoints the WAL from a thread of its own, not inside token requests'
    # commits. Started before the worker's application opens a connection. (gevent workers keep SQLite's
    # default: a thread started before gevent patches the worker would not mix with its hub.)
    from authserver import checkpoint

    path = checkpoint.database_file(_settings.database_url)
    if path is not None and _settings.worker_class == "sync":
        checkpoint.start(path)


def post_worker_init(worker):
    # The worker's application is made: its modules, configuration and caches live as long as the worker.
    # Moved out of the garbage collector's sight, a full collection no longer walks them all: under load it
    # took 80-110 ms, a stall of every request waiting on that worker, and of the other workers' writers
    # when it struck inside the write lock (bench/README.md, "... and garbage collection pauses").
    import gc

    gc.freeze()


def when_ready(server):
    global _purger
    import subprocess
    import sys

    interval = _settings.purge_interval
    if interval > 0:
        _purger = subprocess.Popen(
            [sys.executable, "-m", "authserver.cli", "purge", "--every", str(interval), "--parent", str(os.getpid())],
            preexec_fn=_die_with_parent,
        )


def on_exit(server):
    if _purger is not None and _purger.poll() is None:
        _purger.terminate()
        try:
            _purger.wait(timeout=5)
        except Exception:
            _purger.kill()
