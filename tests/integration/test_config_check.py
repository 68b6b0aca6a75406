"""`authserver config check` and `config generate`: one clear line and a distinct exit code per class
of mistake; /readyz refuses while the key-encryption key cannot open the signing key."""
from __future__ import annotations

import os
import subprocess

from ..conftest import make_app
from ..servers import AUTHSERVER, free_port


def _run(tmp_path, *args, **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update({"AUTHSERVER_INSTANCE_PATH": str(tmp_path / "instance"), **env_extra})
    return subprocess.run([AUTHSERVER, *args], env=env, capture_output=True, text=True, timeout=120)


def test_config_check_names_each_mistake_with_its_own_exit_code(tmp_path):
    fresh = _run(tmp_path, "config", "check")
    assert fresh.returncode == 12 and "run 'authserver init'" in fresh.stderr and "Traceback" not in fresh.stderr
    assert _run(tmp_path, "init").returncode == 0
    ok = _run(tmp_path, "config", "check", "--json")
    assert ok.returncode == 0 and '"ok": true' in ok.stdout
    wrong_key = _run(tmp_path, "config", "check", AUTHSERVER_KEY_ENCRYPTION_KEY="not-the-key-it-was-made-with")
    assert wrong_key.returncode == 13 and "does not open the stored signing key" in wrong_key.stderr
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x?connect_timeout=2"
    unreachable = _run(tmp_path, "config", "check", AUTHSERVER_DATABASE_URL=dead)
    assert unreachable.returncode == 11 and unreachable.stderr.startswith("error: the database cannot be reached")
    (tmp_path / "a-file").write_text("x")
    blocked = _run(tmp_path, "config", "check", AUTHSERVER_INSTANCE_PATH=str(tmp_path / "a-file" / "instance"))
    assert blocked.returncode == 2 and "instance directory" in blocked.stderr and "Traceback" not in blocked.stderr
    bad_setting = _run(tmp_path, "config", "check", AUTHSERVER_ACCESS_TOKEN_TTL="soon")
    assert bad_setting.returncode == 2 and "AUTHSERVER_ACCESS_TOKEN_TTL" in bad_setting.stderr
    for result in (fresh, wrong_key, unreachable, blocked, bad_setting):
        assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr


def test_config_generate_prints_fresh_secrets(tmp_path):
    first, second = (_run(tmp_path, "config", "generate").stdout for _ in range(2))
    names = [line.split("=", 1)[0] for line in first.splitlines()]
    assert names == ["AUTHSERVER_SECRET_PEPPER", "AUTHSERVER_KEY_ENCRYPTION_KEY", "AUTHSERVER_SESSION_KEY"]
    assert first != second and all(len(line.split("=", 1)[1]) >= 43 for line in first.splitlines())


def test_readyz_refuses_while_the_key_encryption_key_cannot_open_the_signing_key(tmp_path, sqlite_template):
    app = make_app(tmp_path, sqlite_template, key_encryption_key="not-the-key-it-was-made-with")
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503 and answer.get_json()["checks"]["signing_key"] == "unusable"
