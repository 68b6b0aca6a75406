"""authserver/gunicorn_conf.py unchanged, plus one hook that logs, from inside each worker after the app
is loaded, what gevent did to the locks and the PostgreSQL driver the token path relies on.
Used by bench/slowclients/gevent_check.py only."""
import os
from pathlib import Path

_main = Path(__file__).resolve().parents[2] / "authserver" / "gunicorn_conf.py"
exec(compile(_main.read_text(), str(_main), "exec"))


def post_worker_init(worker):
    import sys

    facts = {"worker": type(worker).__name__, "pid": os.getpid()}
    try:
        import gevent.monkey

        facts["threading_patched"] = gevent.monkey.is_module_patched("threading")
        facts["select_patched"] = gevent.monkey.is_module_patched("select")
    except ImportError:
        pass
    store = sys.modules.get("authserver.store")
    if store is not None:
        facts["store_write_lock"] = (
            type(store._thread_write_lock).__module__ + "." + type(store._thread_write_lock).__name__
        )
        facts["store_idle_lock"] = type(store._idle_lock).__module__ + "." + type(store._idle_lock).__name__
    outages = sys.modules.get("authserver.outages")
    if outages is not None:
        facts["outages_lock"] = type(outages._lock).__module__ + "." + type(outages._lock).__name__
    if "psycopg" in sys.modules:
        import psycopg.waiting

        facts["psycopg_wait"] = psycopg.waiting.wait.__name__
    else:
        facts["psycopg_wait"] = "psycopg not imported yet"
    worker.log.warning("INSPECT %s", __import__("json").dumps(facts))


_after_first_request = set()


def post_request(worker, req, environ, resp):
    """Once per worker, after its first request (the database driver is loaded by then)."""
    if os.getpid() in _after_first_request:
        return
    _after_first_request.add(os.getpid())
    post_worker_init(worker)
