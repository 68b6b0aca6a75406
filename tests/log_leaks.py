"""A check over every log line the suite produces: records of the `authserver` loggers (caught as they are
made, whatever handlers the app installs) and the output of live servers the tests start. A line holding a
client secret, an argon2 hash, a PEM private key or a whole JWT fails the test that produced it; the
report names the test, the logger or server and the kind of secret, never the secret itself."""
from __future__ import annotations

import logging
import re
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LEAK_PATTERNS = {
    "a client secret": re.compile(r"ascs_[0-9A-Za-z]{49}"),
    "a client secret of the older format": re.compile(r"(?<![A-Za-z0-9_-])as_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
    "an argon2 hash": re.compile(r"\$argon2(?:id|i|d)\$"),
    "a PEM private key": re.compile(r"PRIVATE KEY-----"),
    "a whole JWT": re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
}
WATCHED_LOGGER = "authserver"
OUTSIDE_A_TEST = "(outside any test)"


def leaks_in(text: str) -> list[str]:
    """The kinds of secret the text holds (empty: none)."""
    return [kind for kind, pattern in LEAK_PATTERNS.items() if pattern.search(text)]


def record_text(record: logging.LogRecord) -> str:
    """Everything a formatter could write for the record: message, extra fields and traceback."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the logging call's bug, not a leak
        message = str(record.msg)
    parts = [message, *(str(value) for value in vars(record).values() if isinstance(value, (str, dict, list, tuple)))]
    if record.exc_info and record.exc_info[0] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


@dataclass
class LogLeakChecker:
    current_test: str = OUTSIDE_A_TEST
    findings: list[tuple[str, str, str]] = field(default_factory=list)  # (test, source, kind)

    def check_record(self, record: logging.LogRecord) -> None:
        if record.name == WATCHED_LOGGER or record.name.startswith(WATCHED_LOGGER + "."):
            for kind in leaks_in(record_text(record)):
                self.findings.append((self.current_test, f"logger {record.name}", kind))

    def check_output(self, text: str, source: str) -> None:
        for number, line in enumerate(text.splitlines(), 1):
            for kind in leaks_in(line):
                self.findings.append((self.current_test, f"{source}, line {number}", kind))

    def check_file(self, path: Path, source: str) -> None:
        self.check_output(Path(path).read_text(errors="replace"), source)

    def install(self) -> None:
        """Watch every record made from now on (a record factory sees them before any handler or filter)."""
        make_record = logging.getLogRecordFactory()

        def watched(*args, **kwargs):
            record = make_record(*args, **kwargs)
            self.check_record(record)
            return record

        logging.setLogRecordFactory(watched)

    def take(self, test: str | None = None) -> list[str]:
        """Readable reports of the findings (of one test, or all), removed from the checker."""
        chosen = [f for f in self.findings if test is None or f[0] == test]
        self.findings = [f for f in self.findings if f not in chosen]
        return [f"{where}: {source} wrote {kind}" for where, source, kind in chosen]


CHECKER = LogLeakChecker()


@contextmanager
def no_traceback_logged():
    """Every record of the server's loggers during the block; none may carry a traceback or be an ERROR."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("authserver")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    bad = [f"{r.name}: {r.levelname} {r.getMessage()[:200]}" for r in records
           if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()]
    assert not bad, bad
