"""Settings: defaults from authserver/defaults.toml, overridden by AUTHSERVER_* environment variables."""
from __future__ import annotations

import base64
import os
import secrets
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULTS_FILE = PACKAGE_ROOT / "defaults.toml"
MIGRATIONS_DIR = PACKAGE_ROOT / "migrations"
ENV_PREFIX = "AUTHSERVER_"
SIGNING_ALGS = ("RS256", "ES256", "EdDSA")
# The longest life a client secret may be given (ten years), by default or per secret: longer is a mistake.
SECRET_TTL_MAX_DAYS = 3650
# Upper bounds of the console session lifetimes (a week idle, a year in all): longer is a mistake.
CONSOLE_SESSION_IDLE_MINUTES_MAX = 7 * 24 * 60
CONSOLE_SESSION_MAX_HOURS_MAX = 366 * 24
# A shorter /metrics token would be guessable; 32 characters of base64url carry 192 bits.
METRICS_TOKEN_MIN = 32


class ConfigError(ValueError):
    """A setting has a value the server cannot run with."""


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    issuer: str
    audience: str
    access_token_ttl: int
    signing_alg: str
    assertion_max_lifetime: int
    clock_skew: int
    assertion_max_bytes: int
    oauth_max_body_bytes: int
    scopes_supported: tuple[str, ...]
    redis_url: str
    redis_timeout_ms: int
    redis_cooldown: int
    database_connect_timeout: int
    database_statement_timeout_ms: int
    database_lock_timeout_ms: int
    drain_seconds: int
    request_deadline_seconds: int
    workers: int
    worker_class: str
    purge_interval: int
    signing_key_refresh: int
    signing_key_activation_delay: int
    secret_default_ttl_days: int
    rate_limit_auth_failures_per_client: int
    rate_limit_auth_failures_per_address: int
    rate_limit_token_requests_per_client: int
    console_session_idle_minutes: int
    console_session_max_hours: int
    session_key: str
    secret_pepper: bytes
    key_encryption_key: bytes
    log_level: str
    trusted_proxies: int = 0
    metrics_token: str = ""
    key_fetch_allow_insecure: bool = False
    key_fetch_ca_file: str = ""

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/oauth/token"

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")


@lru_cache(maxsize=8)
def issuer_allows_plain_http(issuer: str) -> bool:
    """RFC 6749 §3.2: plain http only under an http issuer on a loopback address (Authlib's transport rule,
    applied to the configured issuer, never to the Host header): development only."""
    from authlib.common.security import is_secure_transport

    return not issuer.startswith("https://") and bool(is_secure_transport(issuer + "/"))


def current_settings() -> Settings:
    """The Settings of the running app."""
    from flask import current_app

    return current_app.extensions["authserver.settings"]


@lru_cache(maxsize=1)
def _parsed_defaults() -> tuple[tuple[str, Any], ...]:
    with DEFAULTS_FILE.open("rb") as fh:
        return tuple(tomllib.load(fh).items())


def _read_defaults() -> dict:
    """defaults.toml, parsed once per process (package data: it changes only with the package); a new dict
    each call, for the caller to overlay."""
    return dict(_parsed_defaults())


def make_instance_directory(instance_path: Path) -> None:
    """Create the instance directory (and its parents) unless it exists; a ConfigError that says why not."""
    try:
        instance_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"the instance directory {instance_path} cannot be created: {exc.strerror}") from None


def _instance_secret(instance_path: Path, filename: str, nbytes: int) -> str:
    """Read a generated secret from the instance path, creating it (mode 0600) on first use."""
    path = instance_path / filename
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read {path} in the instance directory: {exc.strerror}") from None
    make_instance_directory(instance_path)
    value = base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its value
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


SERVED_ISSUER_FILE = "served-issuer"  # written by `authserver serve` when it derives the issuer from --host/--port


WORKER_CLASSES = ("sync", "gevent")
FLAG_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _ca_file(value: object) -> str:
    """The CA bundle that replaces the system's for key fetching: empty (system CAs) or a readable file."""
    text = str(value).strip()
    if not text:
        return ""
    path = Path(text).expanduser().resolve()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"AUTHSERVER_KEY_FETCH_CA_FILE names {path}, which is not a readable file")
    return str(path)


def _secret_default_ttl_days(days: int) -> int:
    if days > SECRET_TTL_MAX_DAYS:
        raise ConfigError(f"{ENV_PREFIX}SECRET_DEFAULT_TTL_DAYS must be at most {SECRET_TTL_MAX_DAYS} (0 means never)")
    return days


def _metrics_token(value: object) -> str:
    token = str(value).strip()
    if token and (len(token) < METRICS_TOKEN_MIN or not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError(f"{ENV_PREFIX}METRICS_TOKEN must be empty or at least {METRICS_TOKEN_MIN} printable ASCII "
                          "characters without spaces")
    return token


def _worker_class(value: object) -> str:
    if str(value) not in WORKER_CLASSES:
        raise ConfigError(f"AUTHSERVER_WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}")
    return str(value)


def issuer_configured() -> bool:
    """Whether the environment names the issuer (AUTHSERVER_ISSUER); `serve` derives it otherwise."""
    return bool(os.environ.get(ENV_PREFIX + "ISSUER"))


def load_settings(overrides: dict | None = None) -> Settings:
    raw = _read_defaults()
    default_issuer = raw["issuer"]
    for key in list(raw):
        env_value = os.environ.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            raw[key] = env_value
    for key, value in (overrides or {}).items():
        if key not in raw:
            raise ConfigError(f"unknown setting {key!r}")
        raw[key] = value

    def as_int(key: str, minimum: int = 0) -> int:
        try:
            value = int(raw[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{ENV_PREFIX}{key.upper()} must be an integer") from None
        if value < minimum:
            raise ConfigError(f"{ENV_PREFIX}{key.upper()} must be at least {minimum}")
        return value

    def as_flag(key: str) -> bool:
        value = str(raw[key]).strip().lower()
        if value not in FLAG_VALUES:
            raise ConfigError(f"{ENV_PREFIX}{key.upper()} must be 1 or 0 (true or false)")
        return FLAG_VALUES[value]

    def as_bounded_int(key: str, minimum: int, maximum: int) -> int:
        value = as_int(key, minimum)
        if value > maximum:
            raise ConfigError(f"{ENV_PREFIX}{key.upper()} must be at most {maximum}")
        return value

    instance_path = Path(str(raw["instance_path"])).expanduser().resolve()
    if raw["issuer"] == default_issuer and "issuer" not in (overrides or {}) and not issuer_configured():
        # No issuer configured: the address `authserver serve` serves, so the other commands (demo,
        # assertion) name the same one.
        try:
            raw["issuer"] = (instance_path / SERVED_ISSUER_FILE).read_text().strip() or default_issuer
        except OSError:
            pass
    issuer = str(raw["issuer"]).rstrip("/")
    if not issuer.startswith(("https://", "http://")):
        raise ConfigError("AUTHSERVER_ISSUER must be an http(s) URL")
    signing_alg = str(raw["signing_alg"])
    if signing_alg not in SIGNING_ALGS:
        raise ConfigError(f"AUTHSERVER_SIGNING_ALG must be one of {', '.join(SIGNING_ALGS)}")
    database_url = str(raw["database_url"]) or f"sqlite:///{instance_path / 'authserver.db'}"

    def secret(key: str, filename: str) -> str:
        return str(raw[key]) or _instance_secret(instance_path, filename, 32)

    return Settings(
        instance_path=instance_path,
        database_url=database_url,
        issuer=issuer,
        audience=str(raw["audience"]) or issuer,
        access_token_ttl=as_int("access_token_ttl", 1),
        signing_alg=signing_alg,
        assertion_max_lifetime=as_int("assertion_max_lifetime", 1),
        clock_skew=as_int("clock_skew"),
        assertion_max_bytes=as_int("assertion_max_bytes", 256),
        oauth_max_body_bytes=as_int("oauth_max_body_bytes", 1024),
        scopes_supported=tuple(str(raw["scopes_supported"]).split()),
        redis_url=str(raw["redis_url"]),
        redis_timeout_ms=as_int("redis_timeout_ms", 1),
        redis_cooldown=as_int("redis_cooldown"),
        database_connect_timeout=as_int("database_connect_timeout", 1),
        database_statement_timeout_ms=as_int("database_statement_timeout_ms"),
        database_lock_timeout_ms=as_int("database_lock_timeout_ms"),
        drain_seconds=as_int("drain_seconds"),
        request_deadline_seconds=as_int("request_deadline_seconds"),
        workers=as_int("workers"),
        worker_class=_worker_class(raw["worker_class"]),
        purge_interval=as_int("purge_interval"),
        signing_key_refresh=as_int("signing_key_refresh", 1),
        signing_key_activation_delay=as_int("signing_key_activation_delay"),
        secret_default_ttl_days=_secret_default_ttl_days(as_int("secret_default_ttl_days")),
        rate_limit_auth_failures_per_client=as_int("rate_limit_auth_failures_per_client"),
        rate_limit_auth_failures_per_address=as_int("rate_limit_auth_failures_per_address"),
        rate_limit_token_requests_per_client=as_int("rate_limit_token_requests_per_client"),
        console_session_idle_minutes=as_bounded_int(
            "console_session_idle_minutes", 1, CONSOLE_SESSION_IDLE_MINUTES_MAX
        ),
        console_session_max_hours=as_bounded_int("console_session_max_hours", 1, CONSOLE_SESSION_MAX_HOURS_MAX),
        session_key=secret("session_key", "session.key"),
        secret_pepper=secret("secret_pepper", "secret-pepper.key").encode(),
        key_encryption_key=secret("key_encryption_key", "key-encryption.key").encode(),
        log_level=str(raw["log_level"]).upper(),
        trusted_proxies=as_int("trusted_proxies"),
        metrics_token=_metrics_token(raw["metrics_token"]),
        key_fetch_allow_insecure=as_flag("key_fetch_allow_insecure"),
        key_fetch_ca_file=_ca_file(raw["key_fetch_ca_file"]),
    )



def reference_entries() -> list[dict[str, Any]]:
    """Every setting of defaults.toml in its order: its environment variable, its default and its meaning
    (the comment above it). `authserver config reference` prints them, as JSON or as docs/configuration.md."""
    defaults = _read_defaults()
    entries, comment = [], []
    for line in DEFAULTS_FILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
        elif "=" in stripped:
            key = stripped.split("=", 1)[0].strip()
            entries.append({"variable": f"{ENV_PREFIX}{key.upper()}", "default": defaults[key],
                            "meaning": " ".join(comment)})
            comment = []
        else:
            comment = [] if not stripped else comment
    return entries


def reference_markdown() -> str:
    """docs/configuration.md: reference_entries() as a Markdown table (a test keeps the file current)."""
    rows = []
    for entry in reference_entries():
        shown = f"`{entry['default']}`" if entry["default"] != "" else "(empty)"
        meaning = entry["meaning"].replace("|", "\\|")
        rows.append(f"| `{entry['variable']}` | {shown} | {meaning} |")
    header = ("# Configuration reference\n\n"
              "Every setting, its environment variable and its default (from `authserver/defaults.toml`). "
              "Generated by `authserver config reference`; a test checks this file is current.\n\n"
              "| variable | default | meaning |\n|---|---|---|\n")
    return header + "\n".join(rows) + "\n"
