"""`authserver issuer …`: trusted issuers (workload identity federation, SPEC §10) from the command line."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInput
from .output import with_app


def issuer_json(issuer) -> dict:
    from ..services.trusted_issuers import key_source

    return {"issuer_id": issuer.issuer_id, "org_id": issuer.org_id, "issuer_url": issuer.issuer_url,
            "audience": issuer.audience, "keys_from": key_source(issuer), "jwks_uri": issuer.jwks_uri,
            "created_at": issuer.created_at, "updated_at": issuer.updated_at}


def rule_json(rule) -> dict:
    from ..services.trusted_issuers import rule_conditions

    return {"rule_id": rule.rule_id, "position": rule.position, "account_id": rule.account_id,
            "claims": rule_conditions(rule), "scope": rule.scope, "resource": rule.resource,
            "created_at": rule.created_at}


def rule_line(entry: dict) -> str:
    conditions = " ".join(f"{name}={value}" for name, value in entry["claims"].items())
    limits = "".join(f"  {name} {entry[name]}" for name in ("scope", "resource") if entry[name])
    return f"{entry['position']}. {entry['rule_id']}  -> {entry['account_id']}  when {conditions}{limits}"


@click.group()
def issuer():
    """Trusted issuers: external identity providers (Kubernetes, CI, another authorization server) whose
    signed JWTs allowed clients exchange for access tokens of the accounts their rules name."""


@issuer.command("add")
@click.argument("org_id")
@click.argument("issuer_url")
@click.option("--audience", required=True, help="The value the issuer's tokens carry in aud for this server.")
@click.option("--jwks-uri", default=None, help="The issuer's JWK Set URL (default: OIDC discovery at ISSUER_URL).")
@click.option("--jwks-file", type=click.Path(dir_okay=False), default=None,
              help="A JWK Set file of the issuer's public keys, for issuers that publish none.")
@with_app
def issuer_add(org_id, issuer_url, audience, jwks_uri, jwks_file):
    """Trust ISSUER_URL for ORG_ID: its keys are fetched now (refused unless usable). Nothing maps to an
    account until a rule is added, and no client may present its assertions until one is allowed."""
    from ..services.trusted_issuers import PASTED_JWKS_MAX_BYTES, add_issuer

    jwks = None
    if jwks_file is not None:
        path = Path(jwks_file)
        try:
            if path.stat().st_size > PASTED_JWKS_MAX_BYTES:
                raise InvalidInput(f"{jwks_file} is larger than {PASTED_JWKS_MAX_BYTES} bytes.")
            jwks = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {jwks_file}: {exc.strerror or exc}") from None
    row = add_issuer(org_id, issuer_url, audience, jwks_uri=jwks_uri, jwks=jwks)
    return {"issuer_id": row.issuer_id}, f"Trusted issuer {row.issuer_id}: {row.issuer_url}"


@issuer.command("list")
@click.argument("org_id")
@with_app
def issuer_list(org_id):
    """List an organization's trusted issuers."""
    from ..services.trusted_issuers import list_issuers

    rows = [issuer_json(i) for i in list_issuers(org_id)]
    lines = [f"{r['issuer_id']}  {r['issuer_url']}  aud {r['audience']}  keys from {r['keys_from']}" for r in rows]
    return rows, "\n".join(lines) or "No trusted issuers."


@issuer.command("show")
@click.argument("issuer_id")
@with_app
def issuer_show(issuer_id):
    """Show an issuer with its keys' fetch status, its rules in order and its allowed clients."""
    from ..services.trusted_issuers import (
        allowed_clients,
        get_issuer,
        keys_status,
        list_rules,
    )

    row = get_issuer(issuer_id)
    status = keys_status(row)
    entry = {**issuer_json(row), "keys": {"source": status.source, "jwks_uri": status.jwks_uri,
                                          "key_ids": list(status.key_ids), "last_fetch_at": status.last_fetch_at,
                                          "last_error": status.last_error},
             "rules": [rule_json(r) for r in list_rules(issuer_id)],
             "clients": [c.client_id for c in allowed_clients(issuer_id)]}
    lines = [f"{entry['issuer_id']}  {entry['issuer_url']}", f"audience  {entry['audience']}",
             f"keys      {status.source} {status.jwks_uri or ''} {', '.join(status.key_ids)}".rstrip()]
    if status.last_error:
        lines.append(f"last error  {status.last_error}")
    lines += ["rules:"] + ([f"  {rule_line(r)}" for r in entry["rules"]] or ["  none: nothing maps to an account"])
    lines += ["clients:"] + ([f"  {c}" for c in entry["clients"]] or ["  none: no client may present its assertions"])
    return entry, "\n".join(lines)


@issuer.command("delete")
@click.argument("issuer_id")
@with_app
def issuer_delete(issuer_id):
    """Delete an issuer with its rules: its assertions are refused from the next request on (tokens
    already issued stay valid until they expire or are revoked)."""
    from ..services.trusted_issuers import delete_issuer

    delete_issuer(issuer_id)
    return {"deleted": issuer_id}, f"Deleted trusted issuer {issuer_id}."


@issuer.group("rule")
def issuer_rule():
    """The rules that map an issuer's assertions to accounts: tried in order, the first match wins."""


@issuer_rule.command("add")
@click.argument("issuer_id")
@click.option("--account", "account_id", required=True, help="The account of the issuer's organization it maps to.")
@click.option("--claim", "claims", multiple=True, metavar="NAME=VALUE",
              help="A claim the assertion must carry with exactly this value (repeatable; all must match).")
@click.option("--scope", default=None, help='At most these scopes, space-delimited (default: the client\'s grant).')
@click.option("--resource", default=None, help="Only tokens for this API identifier (default: any granted).")
@with_app
def issuer_rule_add(issuer_id, account_id, claims, scope, resource):
    """Add a rule after the issuer's others."""
    from ..services.trusted_issuers import add_rule

    entry = rule_json(add_rule(issuer_id, account_id, list(claims), scope=scope, resource=resource))
    return entry, rule_line(entry)


@issuer_rule.command("list")
@click.argument("issuer_id")
@with_app
def issuer_rule_list(issuer_id):
    """List an issuer's rules in the order they are tried."""
    from ..services.trusted_issuers import list_rules

    rows = [rule_json(r) for r in list_rules(issuer_id)]
    return rows, "\n".join(rule_line(r) for r in rows) or "No rules: nothing maps to an account."


@issuer_rule.command("delete")
@click.argument("issuer_id")
@click.argument("rule_id")
@with_app
def issuer_rule_delete(issuer_id, rule_id):
    """Delete a rule: assertions it matched are refused from the next request on (unless a later rule matches)."""
    from ..services.trusted_issuers import delete_rule

    delete_rule(issuer_id, rule_id)
    return {"deleted": rule_id}, f"Deleted rule {rule_id}."


@issuer.command("allow")
@click.argument("issuer_id")
@click.argument("client_id")
@with_app
def issuer_allow(issuer_id, client_id):
    """Allow a client of the issuer's organization to present the issuer's assertions."""
    from ..services.trusted_issuers import allow_client

    allow_client(issuer_id, client_id)
    return {"issuer_id": issuer_id, "client_id": client_id}, f"Client {client_id} may present {issuer_id}'s assertions."


@issuer.command("disallow")
@click.argument("issuer_id")
@click.argument("client_id")
@with_app
def issuer_disallow(issuer_id, client_id):
    """Stop a client presenting the issuer's assertions, from its next request on."""
    from ..services.trusted_issuers import disallow_client

    disallow_client(issuer_id, client_id)
    return ({"issuer_id": issuer_id, "disallowed": client_id},
            f"Client {client_id} no longer presents {issuer_id}'s assertions.")
