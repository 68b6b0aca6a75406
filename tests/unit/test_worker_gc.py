"""A serving worker freezes what its application holds once it is made (authserver/gunicorn_conf.py):
full garbage collections then walk only what requests create, not every module and cache of the
worker, which under load paused a worker for 80-110 ms at a time (bench/README.md)."""
from __future__ import annotations

import gc
import importlib


def test_a_worker_moves_its_startup_objects_out_of_the_collectors_sight(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTHSERVER_INSTANCE_PATH", str(tmp_path))
    gunicorn_conf = importlib.import_module("authserver.gunicorn_conf")
    gc.unfreeze()
    try:
        tracked_before = len(gc.get_objects())
        gunicorn_conf.post_worker_init(worker=None)
        assert gc.get_freeze_count() >= tracked_before * 0.9  # (objects of other threads come and go meanwhile)
        assert len(gc.get_objects()) < tracked_before * 0.1
    finally:
        gc.unfreeze()
