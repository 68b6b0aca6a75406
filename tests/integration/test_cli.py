"""The command line (SPEC §6): every command with --json prints exactly one JSON document on stdout
and nothing else there; errors go to stderr with a non-zero exit and change nothing."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote_plus

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select

from authserver import create_app
from authserver.cli import main
from authserver.extensions import db
from authserver.last_used import FLUSH_SECONDS
from authserver.models import AccessToken, Client, ClientKey, ClientSecret

from ..conftest import ISSUER, JWT_BEARER, TOKEN_ENDPOINT, basic, private_pem, public_pem
from .helpers import case, short

AUTHSERVER = Path(sys.executable).parent / "authserver"
JOBS_API = "https://api.acme.test/jobs"


@pytest.fixture
def instance(tmp_path, sqlite_template) -> Path:
    path = tmp_path / "cli-instance"
    shutil.copytree(sqlite_template, path)
    return path


class Cli:
    def __init__(self, instance: Path):
        self.instance = instance
        self.env = {"AUTHSERVER_INSTANCE_PATH": str(instance), "AUTHSERVER_ISSUER": ISSUER}
        self.runner = CliRunner()

    def run(self, *args, input: str | None = None):
        return self.runner.invoke(main, [str(a) for a in args], env=self.env, input=input, catch_exceptions=False)

    def json(self, *args, input: str | None = None):
        """Run with --json: exit 0, nothing on stderr but logs, exactly one JSON document on stdout."""
        result = self.run(*args, "--json", input=input)
        assert result.exit_code == 0, (args, result.stderr[-500:])
        assert "error" not in result.stderr.lower() or "alembic" in result.stderr, result.stderr[-500:]
        assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, (
            f"not one line: {short(result.stdout, 80)!r}"
        )
        return json.loads(result.stdout)

    def fails(self, *args, needle: str = "", input: str | None = None) -> str:
        """Run with --json and expect a refusal: non-zero exit, nothing on stdout, the reason on stderr."""
        result = self.run(*args, "--json", input=input)
        assert result.exit_code != 0, (args, short(result.stdout, 60))
        assert result.stdout == "", short(result.stdout, 60)
        assert result.stderr.startswith("error: "), result.stderr[-300:]
        assert needle.lower() in result.stderr.lower(), result.stderr[-300:]
        return result.stderr

    def app(self):
        return create_app({"instance_path": str(self.instance), "issuer": ISSUER})


@pytest.fixture
def cli(instance) -> Cli:
    return Cli(instance)


def _rows(app, model, *where):
    with app.app_context():
        try:
            return list(db.session.scalars(select(model).where(*where)))
        finally:
            db.session.remove()
            db.engine.dispose()


def _setup(cli: Cli, tmp_path: Path, scope: str = "read write") -> dict:
    org_id = cli.json("org", "create", "Acme")["org_id"]
    account_id = cli.json("account", "create", org_id, "worker", "--kind", "service")["account_id"]
    client_id = cli.json("client", "create", org_id, "Backend", "--description", "Nightly jobs")["client_id"]
    api_id = cli.json("api", "create", "--org", org_id, "Jobs API", JOBS_API, "--scope", "read=Read jobs",
                      "--scope", "write")["api_id"]
    cli.json("client", "grant", client_id, JOBS_API, "--scope", scope)
    secret = cli.json("secret", "add", client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "client-key.pub.pem"
    key_file.write_bytes(public_pem(key))
    kid = cli.json("key", "add", client_id, key_file, "--kid", "k1")["kid"]
    return {
        "org_id": org_id,
        "account_id": account_id,
        "client_id": client_id,
        "secret": secret,
        "key": key,
        "kid": kid,
        "api_id": api_id,
    }


def _assertion(setup: dict, **claims) -> str:
    import time
    import uuid

    import jwt

    now = int(time.time())
    body = {"iss": setup["client_id"], "sub": setup["account_id"], "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 120,
            "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, setup["key"], algorithm="ES256", headers={"kid": setup["kid"]})


# --- every command with --json ---------------------------------------------------------------

def test_init_is_idempotent_and_prints_one_json_document(cli):
    first = cli.json("init")
    assert set(first) == {"signing_kid", "signing_alg", "management_api", "default_api"}
    assert first["signing_alg"] == "RS256"
    assert cli.json("init") == first


def test_org_account_client_secret_key_flow_yields_a_working_client(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    assert re.fullmatch(r"[0-9a-f]{32}", setup["client_id"])
    assert set(setup["secret"]) == {"secret_id", "client_secret", "hint", "label", "expires_at"}
    assert setup["kid"] == "k1"

    app = cli.app()
    stored = _rows(app, ClientSecret, ClientSecret.client_id == setup["client_id"])
    assert len(stored) == 1 and stored[0].secret_hash != setup["secret"]["client_secret"]
    assert setup["secret"]["client_secret"] not in stored[0].secret_hash

    http = app.test_client()
    response = http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": _assertion(setup)},
                         headers=basic(setup["client_id"], setup["secret"]["client_secret"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope"] == "read write"
    claims = jwt.decode(response.get_json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == JOBS_API and claims["org_id"] == setup["org_id"]
    with app.app_context():
        db.engine.dispose()


def test_client_list_show_and_delete(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    listed = cli.json("client", "list", setup["org_id"])
    assert isinstance(listed, list) and [c["client_id"] for c in listed] == [setup["client_id"]]
    shown = cli.json("client", "show", setup["client_id"])
    assert shown["client_id"] == setup["client_id"] and shown["name"] == "Backend"
    assert shown["description"] == "Nightly jobs" and shown["has_icon"] is False
    assert shown["grants"] == [
        {"api_id": setup["api_id"], "identifier": JOBS_API, "scope": "read write", "default": True}
    ]
    assert "client_secret" not in json.dumps(shown) and setup["secret"]["client_secret"] not in json.dumps(shown)
    assert cli.json("client", "delete", setup["client_id"]) == {"deleted": setup["client_id"]}
    assert cli.json("client", "list", setup["org_id"]) == []
    cli.fails("client", "show", setup["client_id"], needle="not found")
    assert _rows(cli.app(), ClientSecret, ClientSecret.client_id == setup["client_id"]) == []


def test_client_icon(cli, tmp_path):
    from PIL import Image

    org_id = cli.json("org", "create", "Platform")["org_id"]
    icon = tmp_path / "icon.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(icon)
    client_id = cli.json("client", "create", org_id, "Platform API", "--icon", icon)["client_id"]
    shown = cli.json("client", "show", client_id)
    assert shown["has_icon"] is True and shown["grants"] == []
    svg = tmp_path / "icon.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    cli.fails("client", "create", org_id, "Vector", "--icon", svg)
    assert [c["name"] for c in cli.json("client", "list", org_id)] == ["Platform API"]


def test_secret_add_list_delete(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    second = cli.json("secret", "add", setup["client_id"])
    assert second["client_secret"] != setup["secret"]["client_secret"]
    listed = cli.json("secret", "list", setup["client_id"])
    assert [set(row) for row in listed] == [
        {"secret_id", "hint", "label", "created_at", "last_used_at", "expires_at", "leaked_at"}
    ] * 2
    assert {row["secret_id"] for row in listed} == {setup["secret"]["secret_id"], second["secret_id"]}
    assert all(row["last_used_at"] is None for row in listed)
    assert setup["secret"]["client_secret"] not in json.dumps(listed)
    assert cli.json("secret", "delete", setup["client_id"], second["secret_id"]) == {"deleted": second["secret_id"]}
    assert [row["secret_id"] for row in cli.json("secret", "list", setup["client_id"])] == [
        setup["secret"]["secret_id"]
    ]
    cli.fails("secret", "delete", setup["client_id"], second["secret_id"], needle="not found")


def test_secret_list_shows_last_used_after_a_token_request(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    app = cli.app()
    response = app.test_client().post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": _assertion(setup)},
                                      headers=basic(setup["client_id"], setup["secret"]["client_secret"]))
    assert response.status_code == 200
    # The server's own thread writes last-used times within seconds of the request (not in it).
    deadline = time.monotonic() + 3 * FLUSH_SECONDS
    while True:
        [row] = cli.json("secret", "list", setup["client_id"])
        if row["last_used_at"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row["last_used_at"] is not None and row["last_used_at"].endswith("Z")
    with app.app_context():
        db.engine.dispose()


def test_deleting_a_secret_with_the_cli_refuses_it_at_once(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    keeper = cli.json("secret", "add", setup["client_id"])
    app = cli.app()
    http = app.test_client()
    old = basic(setup["client_id"], setup["secret"]["client_secret"])
    response = http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": _assertion(setup)}, headers=old)
    assert response.status_code == 200
    token = response.get_json()["access_token"]
    cli.json("secret", "delete", setup["client_id"], setup["secret"]["secret_id"])
    response = http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": _assertion(setup)}, headers=old)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    answer = http.post(
        "/oauth/introspect", data={"token": token}, headers=basic(setup["client_id"], keeper["client_secret"])
    )
    assert answer.get_json()["active"] is True
    with app.app_context():
        db.engine.dispose()


def test_key_add_pem_and_jwk_list_delete(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    jwk["kid"] = "from-jwk"
    jwk_file = tmp_path / "key.jwk.json"
    jwk_file.write_text(json.dumps(jwk))
    assert cli.json("key", "add", setup["client_id"], jwk_file) == {"kid": "from-jwk"}
    rsa_file = tmp_path / "rsa.pem"
    rsa_file.write_bytes(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    thumbprint_kid = cli.json("key", "add", setup["client_id"], rsa_file)["kid"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", thumbprint_kid)  # RFC 7638 SHA-256 thumbprint
    listed = cli.json("key", "list", setup["client_id"])
    assert [(k["kid"], k["key_type"]) for k in listed] == [
        ("k1", "EC-P-256"),
        ("from-jwk", "EC-P-384"),
        (thumbprint_kid, "RSA-2048"),
    ]
    assert cli.json("key", "delete", setup["client_id"], "from-jwk") == {"deleted": "from-jwk"}
    assert [k["kid"] for k in cli.json("key", "list", setup["client_id"])] == ["k1", thumbprint_kid]
    cli.fails("key", "add", setup["client_id"], rsa_file, needle="kid")  # the same key again: its kid exists
    cli.fails("key", "delete", setup["client_id"], "from-jwk", needle="not found")


def test_account_create_user_disable_and_list(cli):
    org_id = cli.json("org", "create", "Acme")["org_id"]
    user_id = cli.json("account", "create", org_id, "Ada", "--kind", "user", "--email", "ada@example.com", "--admin",
                       "--password-stdin", input="correct horse battery staple\n")["account_id"]
    service_id = cli.json("account", "create", org_id, "worker", "--kind", "service")["account_id"]
    disabled = cli.json("account", "disable", service_id)
    assert disabled["account_id"] == service_id and disabled["disabled"] is True
    listed = {a["account_id"]: a for a in cli.json("account", "list", org_id)}
    assert listed[user_id]["admin"] is True and listed[user_id]["email"] == "ada@example.com"
    assert listed[service_id]["disabled"] is True
    assert "password" not in json.dumps(listed).replace("password_", "")
    cli.fails("account", "create", org_id, "Bob", "--kind", "user", "--email", "ada@example.com", needle="exists")
    cli.fails("account", "create", org_id, "svc", "--kind", "service", "--admin")
    cli.fails("account", "create", org_id, "Eve", "--kind", "user", "--email", "eve@example.com", "--password-stdin",
              input="short\n", needle="password")


def test_disabled_account_gets_no_token(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    cli.json("account", "disable", setup["account_id"])
    app = cli.app()
    response = app.test_client().post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": _assertion(setup)},
                                      headers=basic(setup["client_id"], setup["secret"]["client_secret"]))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    assert _rows(app, AccessToken) == []


def test_signing_key_rotate(cli):
    before = cli.json("init")["signing_kid"]
    rotated = cli.json("signing-key", "rotate")
    assert set(rotated) == {"kid", "alg"} and rotated["kid"] != before and rotated["alg"] == "RS256"
    app = cli.app()
    kids = {k["kid"] for k in app.test_client().get("/oauth/jwks").get_json()["keys"]}
    assert kids == {before, rotated["kid"]}
    assert cli.json("init")["signing_kid"] == rotated["kid"]
    with app.app_context():
        db.engine.dispose()


def test_purge(cli):
    result = cli.json("purge")
    assert result == {"access_tokens": 0, "used_assertions": 0} or set(result) >= {"access_tokens", "used_assertions"}


def test_demo_prints_a_working_client_and_curl_line(cli):
    demo = cli.json("demo")
    for field in ("org_id", "account_id", "client_id", "secret_id", "client_secret", "kid", "private_key_file", "curl"):
        assert demo[field], field
    key_file = Path(demo["private_key_file"])
    assert key_file.exists() and (key_file.stat().st_mode & 0o077) == 0
    # Run the curl line's request as curl would send it.
    words = shlex.split(demo["curl"])
    assert words[0] == "curl"
    user = words[words.index("-u") + 1]
    client_id, _, secret = user.partition(":")
    form = dict(w.split("=", 1) for i, w in enumerate(words) if i > 0 and words[i - 1] == "-d")
    assert words[-1] == TOKEN_ENDPOINT
    app = cli.app()
    response = app.test_client().post("/oauth/token", data={k: unquote_plus(v) for k, v in form.items()},
                                      headers=basic(client_id, secret))
    assert response.status_code == 200, response.get_json()
    # The demo admin can sign into the console with the password shown once.
    assert demo["admin_email"] and demo["admin_password"]
    with app.app_context():
        from authserver.services.accounts import authenticate_user

        admin = authenticate_user(demo["admin_email"], demo["admin_password"])
        assert admin is not None and admin.is_admin and admin.org_id == demo["org_id"]
        db.engine.dispose()


def test_assertion_command_signs_a_usable_assertion(cli, tmp_path):
    demo = cli.json("demo")
    signed = cli.json("assertion", "--key", demo["private_key_file"], "--client-id", demo["client_id"],
                      "--subject", demo["account_id"], "--kid", demo["kid"])["assertion"]
    app = cli.app()
    response = app.test_client().post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": signed},
                                      headers=basic(demo["client_id"], demo["client_secret"]))
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        db.engine.dispose()


# --- refusals ------------------------------------------------------------------------------------

def test_unknown_client_id_is_refused_on_stderr(cli):
    unknown = "0" * 32
    for args in (("secret", "add", unknown), ("secret", "list", unknown), ("key", "list", unknown),
                 ("client", "show", unknown), ("client", "delete", unknown), ("secret", "delete", unknown, "sec_x")):
        cli.fails(*args, needle="not found")
    assert _rows(cli.app(), ClientSecret) == []


def test_unknown_org_and_account_are_refused(cli):
    cli.fails("client", "create", "org_nope", "App", needle="not found")
    cli.fails("account", "create", "org_nope", "A", "--kind", "service", needle="not found")
    cli.fails("account", "disable", "acc_nope", needle="not found")
    cli.fails("client", "list", "org_nope", needle="not found")


def test_public_client_is_refused(cli):
    org_id = cli.json("org", "create", "Acme")["org_id"]
    cli.fails("client", "create", org_id, "SPA", "--type", "public", needle="public")
    assert cli.json("client", "list", org_id) == []
    assert _rows(cli.app(), Client) == []


def test_bad_names_and_scopes_are_refused(cli):
    cli.fails("org", "create", "   ", needle="name")
    org_id = cli.json("org", "create", "Acme")["org_id"]
    cli.fails("client", "create", org_id, "x" * 101, needle="100")
    cli.fails("api", "create", "--org", org_id, "Orders", "https://api.acme.test/orders", "--scope", 'bad"scope',
              needle="scope")
    cli.fails("client", "create", org_id, "App", "--description", "d" * 1001, needle="1000")
    assert cli.json("client", "list", org_id) == []


def test_bad_key_file_is_refused(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    for content, needle in (
        (b"this is not a key", "key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM"),
        (b"\xff\xfe\xfd", "text"),
        (b"", "empty"),
        (b'{"keys": []}', "JWK Set"),
    ):
        bad = tmp_path / "bad.pem"
        bad.write_bytes(content)
        with case(content):
            cli.fails("key", "add", setup["client_id"], bad, needle=needle)
    assert [k["kid"] for k in cli.json("key", "list", setup["client_id"])] == ["k1"]


def test_missing_key_file_is_refused(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    cli.fails("key", "add", setup["client_id"], tmp_path / "missing.pem", needle="cannot read")


def test_private_key_is_refused(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    private = ec.generate_private_key(ec.SECP256R1())
    pem_file = tmp_path / "private.pem"
    pem_file.write_bytes(private_pem(private))
    cli.fails("key", "add", setup["client_id"], pem_file, needle="private")
    traditional = tmp_path / "traditional.pem"
    traditional.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    cli.fails("key", "add", setup["client_id"], traditional, needle="private")
    jwk_file = tmp_path / "private.jwk"
    jwk_file.write_text(ECAlgorithm.to_jwk(private))
    cli.fails("key", "add", setup["client_id"], jwk_file, needle="private")
    assert _rows(cli.app(), ClientKey, ClientKey.client_id == setup["client_id"])[0].kid == "k1"
    assert len(_rows(cli.app(), ClientKey)) == 1


def test_rsa_1024_is_refused(cli, tmp_path):
    setup = _setup(cli, tmp_path)
    weak = tmp_path / "weak.pem"
    weak.write_bytes(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    cli.fails("key", "add", setup["client_id"], weak, needle="2048")
    assert len(_rows(cli.app(), ClientKey)) == 1


def test_uninitialised_database_says_to_run_init(tmp_path):
    cli = Cli(tmp_path / "empty-instance")
    cli.fails("org", "create", "Acme", needle="authserver init")


# --- the installed console script, as a user runs it ----------------------------------------------

def _script(instance: Path, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUTHSERVER_INSTANCE_PATH": str(instance), "AUTHSERVER_ISSUER": ISSUER}
    return subprocess.run(
        [str(AUTHSERVER), *map(str, args)], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_console_script_stdout_carries_only_json(tmp_path):
    instance = tmp_path / "fresh"
    init = _script(instance, "init", "--json")
    assert init.returncode == 0, init.stderr[-500:]
    assert set(json.loads(init.stdout)) == {
        "signing_kid",
        "signing_alg",
        "management_api",
        "default_api",
    }  # logs: stderr
    assert (instance / "authserver.db").exists()
    for name in ("secret-pepper.key", "session.key"):
        assert (instance / name).stat().st_mode & 0o077 == 0, name
    refused = _script(instance, "secret", "add", "0" * 32, "--json")
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.strip().startswith("error:")


_HEAVY_FOR_A_COMMAND = ("alembic", "flask_migrate", "redis", "flask_wtf", "wtforms", "PIL", "authserver.api",
                        "authserver.console", "authserver.csrf", "authserver.oauth.server", "authserver.oauth.views",
                        "authserver.oauth.federation")
_MODULES_AFTER = """
import json, sys
from authserver.cli import main
try:
    main(sys.argv[1:], prog_name="authserver", standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_loaded_by(instance: Path, *args) -> tuple[subprocess.CompletedProcess, set[str]]:
    env = {**os.environ, "AUTHSERVER_INSTANCE_PATH": str(instance), "AUTHSERVER_ISSUER": ISSUER}
    done = subprocess.run([sys.executable, "-c", _MODULES_AFTER, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=60)
    return done, set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_a_command_loads_neither_migrations_nor_redis_nor_the_doors_unless_it_needs_them(instance):
    """A command's start-up is mostly imports: everyday commands leave out Alembic, the redis client,
    Flask-WTF, Pillow and the doors' modules (the OAuth endpoints, the console, the management API);
    `init` loads Alembic when there is something to migrate, and not on a database already at this
    version's schema."""
    done, modules = _modules_loaded_by(instance, "org", "create", "Acme", "--json")
    assert done.returncode == 0, done.stderr[-500:]
    assert json.loads(done.stdout)["org_id"]
    heavy = sorted(m for m in modules if m.split(".")[0] in _HEAVY_FOR_A_COMMAND or m.startswith(_HEAVY_FOR_A_COMMAND))
    assert heavy == [], heavy
    done, modules = _modules_loaded_by(instance, "init", "--json")
    assert done.returncode == 0, done.stderr[-500:]
    assert not any(m.split(".")[0] in ("alembic", "flask_migrate") for m in modules)
    fresh = instance.parent / "fresh-instance"
    done, modules = _modules_loaded_by(fresh, "init", "--json")
    assert done.returncode == 0, done.stderr[-500:]
    assert "alembic" in modules and "flask_migrate" in modules
    done, modules = _modules_loaded_by(fresh, "config", "check", "--json")
    assert done.returncode == 0, done.stderr[-500:]
    assert json.loads(done.stdout)["ok"] is True
    assert not any(m.split(".")[0] in ("alembic", "flask_migrate") for m in modules)
