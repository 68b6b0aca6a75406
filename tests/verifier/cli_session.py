"""`authserver` commands run one after another in a single process: each stdin line is a JSON array of
arguments (``--json`` is added), each stdout line the JSON answer ``{"exit_code", "stdout", "stderr"}``.

The commands are the command line's own (`authserver.cli.main`, same environment and database); one
process for all of them saves the interpreter start and imports, about 1.5 s a command.
Run as ``python cli_session.py``; `CliSession` drives it."""
from __future__ import annotations

import contextlib
import io
import json
import os
import selectors
import subprocess
import sys
from pathlib import Path


def _serve() -> None:
    import click

    from authserver.cli import main

    answers = sys.stdout
    for line in sys.stdin:
        args = json.loads(line)
        out, err = io.StringIO(), io.StringIO()  # never closed: a log handler made now may keep one
        exit_code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([*args, "--json"], prog_name="authserver", standalone_mode=False)
            except click.exceptions.Exit as exit_:
                exit_code = exit_.exit_code
            except click.ClickException as error:
                error.show()
                exit_code = error.exit_code
            except SystemExit as exit_:
                exit_code = exit_.code if isinstance(exit_.code, int) else 1
            except Exception as error:  # noqa: BLE001 - reported to the test
                print(f"{type(error).__name__}: {error}", file=sys.stderr)
                exit_code = 1
        answers.write(
            json.dumps({"exit_code": exit_code, "stdout": out.getvalue(), "stderr": err.getvalue()[-2000:]}) + "\n"
        )
        answers.flush()


class CliSession:
    """`session("org", "create", "Acme")` -> the command's JSON, like tests.servers.cli."""

    def __init__(self, env: dict, timeout: float = 60):
        self.timeout = timeout
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def __call__(self, *args: str) -> dict | list:
        self.process.stdin.write(json.dumps([str(arg) for arg in args]) + "\n")
        self.process.stdin.flush()
        if not self._selector.select(self.timeout):
            self.close()
            raise AssertionError(f"authserver {args[0]} did not answer within {self.timeout}s")
        line = self.process.stdout.readline()
        assert line, f"the CLI session ended (exit code {self.process.poll()})"
        answer = json.loads(line)
        assert answer["exit_code"] == 0, f"authserver {' '.join(map(str, args[:2]))} failed: {answer['stderr']}"
        return json.loads(answer["stdout"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._selector.close()


if __name__ == "__main__":
    os.environ.setdefault("AUTHSERVER_LOG_LEVEL", "WARNING")
    _serve()
