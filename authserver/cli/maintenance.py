"""The command line: the background purger."""
from __future__ import annotations

import os
import time

import click

from .output import with_app


def purge_once() -> dict:
    from ..services.app_services import app_services
    from ..services.client_secrets import note_expiring_secrets
    from ..services.tokens import purge_expired

    result = purge_expired()
    result["rate_limit_counters"] = app_services().rate_limiter.purge()
    result["expiring_secrets_noticed"] = len(note_expiring_secrets())
    return result


@click.command()
@click.option("--every", type=int, default=0, help="Repeat every N seconds until stopped (the background purger).")
@click.option("--parent", type=int, default=None, hidden=True,
              help="Stop when this process (the server's master) is gone.")
@with_app
def purge(every, parent):
    """Delete expired token records, used assertion ids, rate-limit windows and console sessions, and
    write a secret.expiring audit event for each secret that came within 14 days of its expiry.

    With --every, one purger of the whole deployment works: hosts sharing a PostgreSQL database elect
    it through an advisory lock, so N hosts do not purge N times; another takes over if it dies."""
    import logging
    import signal

    from ..services.tokens import PurgeLeader

    log = logging.getLogger("authserver.purge")
    result = purge_once()
    if every <= 0:
        return result, (f"Purged {result['access_tokens']} expired tokens, {result['used_assertions']} used "
                        f"assertion ids and {result['rate_limit_counters']} rate-limit windows.")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    leader = PurgeLeader()
    deadline = time.monotonic() + every
    while not stopping:
        if parent is not None and os.getppid() != parent:
            break  # the master died without stopping us: never outlive it
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        if time.monotonic() < deadline:
            continue
        deadline = time.monotonic() + every
        try:
            if leader.is_leader():
                result = purge_once()
                log.info("purged", extra=result)
        except Exception as exc:  # a database hiccup must not end the background purger
            from ..outages import note_outage

            note_outage("database", exc)
        finally:
            from ..extensions import db

            db.session.remove()
    leader.close()
    return result, "Purger stopped."
