"""The log-leak check of the suite (tests/log_leaks.py) finds what it must, in log records and in
server output, and its report never repeats the secret it found."""
from __future__ import annotations

import logging

import pytest

from authserver.crypto.client_secrets import generate_client_secret

from ..log_leaks import LogLeakChecker, leaks_in

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----"
ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
OLD_SECRET = "as_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0u-_"


def _record(name: str, msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize("secret, kind", [
    (generate_client_secret(), "a client secret"), (OLD_SECRET, "a client secret of the older format"),
    (ARGON2, "an argon2 hash"), (PEM, "a PEM private key"), (JWT, "a whole JWT"),
], ids=["secret", "old-secret", "argon2", "pem", "jwt"])
def test_a_planted_secret_in_a_record_is_found_and_never_repeated(secret, kind):
    checker = LogLeakChecker(current_test="tests/x.py::test_planted")
    checker.check_record(_record("authserver.oauth", "statement failed with %s", secret))
    reports = checker.take()
    assert reports == [f"tests/x.py::test_planted: logger authserver.oauth wrote {kind}"]
    assert secret not in "".join(reports) and secret[-12:] not in "".join(reports)


def test_secrets_in_extra_fields_and_tracebacks_are_found():
    checker = LogLeakChecker()
    record = _record("authserver.access", "request")
    record.path = "/oauth/token?assertion=" + JWT
    checker.check_record(record)
    try:
        raise ValueError(ARGON2)
    except ValueError:
        import sys

        checker.check_record(_record("authserver", "failed", exc_info=sys.exc_info()))
    assert [r.rsplit(" wrote ", 1)[1] for r in checker.take()] == ["a whole JWT", "an argon2 hash"]


def test_server_output_is_checked_line_by_line():
    checker = LogLeakChecker(current_test="t")
    output = "starting\n" + '{"message": "bad secret ' + generate_client_secret() + '"}\n'
    checker.check_output(output, "server on port 1")
    assert checker.take() == ["t: server on port 1, line 2 wrote a client secret"]


def test_ordinary_lines_and_other_loggers_are_not_findings():
    checker = LogLeakChecker()
    for text in ("request", "as_of 2026", "client ascs_short failed", "kid eyJhbGci only", "has_" + "x" * 43):
        checker.check_record(_record("authserver.oauth", text))
    checker.check_record(_record("urllib3", "uses %s", JWT))  # not a logger of the server
    assert checker.take() == [] and leaks_in("hash $argon2 missing its variant") == []
