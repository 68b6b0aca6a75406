"""Graceful shutdown: on SIGTERM a server first says it is going (/readyz answers 503) while it
keeps serving for the drain time, so a load balancer stops sending it traffic and every request
already sent, including those still queued in the listen backlog, is answered; then the workers
finish their current requests and exit.

The draining flag lives in memory shared by the master and the workers it forks."""
from __future__ import annotations

import multiprocessing

_flag = None  # a RawValue made by the master before it forks workers (see authserver/gunicorn_conf.py)


def prepare() -> None:
    """In the master, before any worker is forked."""
    global _flag
    if _flag is None:
        _flag = multiprocessing.RawValue("b", 0)


def start_draining() -> None:
    if _flag is not None:
        _flag.value = 1


def draining() -> bool:
    return _flag is not None and _flag.value == 1
