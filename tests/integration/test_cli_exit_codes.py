"""Every command maps a failure to the exit code of its class, as docs/cli.md lists them."""
from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from authserver.cli import main

from ..conftest import ISSUER

DOCUMENTED = dict((int(code), text) for code, text in re.findall(
    r"^\| (\d+) \| (.+?) \|$", (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(), flags=re.M))


def _run(env: dict, *args: str):
    return CliRunner().invoke(main, [*args, "--json"], env=env, catch_exceptions=False)


def _refused(result, code: int, needle: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stderr[-300:])
    assert code in DOCUMENTED and code != 0, f"exit code {code} is not in docs/cli.md"
    assert result.stdout == "" and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert needle.lower() in result.stderr.lower(), result.stderr


def test_each_class_of_domain_failure_has_its_own_documented_code(cli):
    org_id = cli.json("org", "create", "Acme")["org_id"]
    _refused(cli.run("client", "create", org_id, "", "--json"), 2, "name")  # invalid input
    _refused(cli.run("client", "show", "no-such-client", "--json"), 3, "not found")  # not found
    cli.json("api", "create", "--org", org_id, "Jobs", "https://jobs.example.com/")
    _refused(cli.run("api", "create", "--org", org_id, "Jobs again", "https://jobs.example.com/", "--json"), 4,
             "already")  # conflict


def test_a_database_without_schema_is_told_apart_from_an_unreachable_one(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_schema = _run({"AUTHSERVER_INSTANCE_PATH": str(empty), "AUTHSERVER_ISSUER": ISSUER}, "org", "list")
    _refused(no_schema, 12, "authserver init")
    unreachable = _run({"AUTHSERVER_INSTANCE_PATH": str(empty), "AUTHSERVER_ISSUER": ISSUER,
                        "AUTHSERVER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}, "org", "list")
    _refused(unreachable, 11, "cannot be reached")


def test_invalid_settings_exit_2_like_invalid_input(tmp_path):
    result = _run({"AUTHSERVER_INSTANCE_PATH": str(tmp_path), "AUTHSERVER_ISSUER": ISSUER,
                   "AUTHSERVER_ACCESS_TOKEN_TTL": "soon"}, "org", "list")
    _refused(result, 2, "AUTHSERVER_ACCESS_TOKEN_TTL")


def test_serve_with_an_unusable_metrics_directory_exits_10_before_serving(tmp_path, monkeypatch):
    """`serve` makes the Prometheus directory (instance/prometheus-PORT) before the application, so the workers
    count together; where it cannot (here a file has its name), one line and the instance directory's code."""
    from authserver.cli import server

    def no_serving(args):  # had serve gone on, it would run gunicorn's master in this test process
        raise AssertionError("serve went on to serve despite the unusable metrics directory")

    monkeypatch.setattr(server, "_run_gunicorn", no_serving)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # restored even if serve went on to set it
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "prometheus-8799").write_text("not a directory")
    result = CliRunner().invoke(main, ["serve", "--port", "8799"], catch_exceptions=False,
                                env={"AUTHSERVER_INSTANCE_PATH": str(instance), "AUTHSERVER_ISSUER": ISSUER})
    _refused(result, 10, "metrics directory")
    assert (instance / "prometheus-8799").read_text() == "not a directory"
