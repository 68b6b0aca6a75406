"""Trusted issuers (workload identity federation, SPEC §10): an organization names an external issuer
whose signed JWTs its clients may exchange for access tokens, where the issuer's keys come from, the
audience its tokens must carry, the rules that map their claims to one of its accounts, and the
clients allowed to present them. Nothing maps by default: without a matching rule there is no token.

Every change bumps the issuer's `version` in SQL (the token path keys its parsed copy on it) and is
audited."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import Client, TrustedIssuer, TrustedIssuerClient, TrustedIssuerRule
from .accounts import get_account
from .apis import is_valid_identifier
from .audit import record_event
from .client_keys import key_fetcher, shown_url
from .clients import get_client
from .common import CLI_ACTOR, Actor, is_identifier, new_id, parse_scope_list, transactional
from .organizations import get_organization

ISSUER_URL_MAX = 512
AUDIENCE_MAX = 512
PASTED_JWKS_MAX_BYTES = 65536  # the same limit as a fetched JWK Set
MAX_ISSUERS_PER_ORG = 50
MAX_RULES_PER_ISSUER = 100
MAX_CONDITIONS_PER_RULE = 16
CLAIM_NAME_MAX = 128
CLAIM_VALUE_MAX = 1024
PASTED_JWKS_LABEL = "(pasted)"

# How the issuer's keys are found, as listings name it.
KEYS_FROM_DISCOVERY, KEYS_FROM_JWKS_URI, KEYS_PASTED = "discovery", "jwks_uri", "jwks"


@dataclass(frozen=True)
class IssuerKeysStatus:
    """Where an issuer's keys come from and what this process last fetched (times: epoch seconds)."""

    source: str  # KEYS_FROM_DISCOVERY, KEYS_FROM_JWKS_URI or KEYS_PASTED
    jwks_uri: str | None  # the URL of its JWK Set (from discovery when that is the source), if known
    key_ids: tuple[str, ...]
    last_fetch_at: int | None
    last_error: str | None


def key_source(issuer: TrustedIssuer) -> str:
    if issuer.jwks is not None:
        return KEYS_PASTED
    return KEYS_FROM_JWKS_URI if issuer.jwks_uri is not None else KEYS_FROM_DISCOVERY


def bump_issuer_version(issuer_id: str) -> None:
    """Every worker's parsed copy of the issuer is stale from now on. Incremented in SQL, so two
    concurrent changes each count (as Client.keys_version)."""
    db.session.execute(update(TrustedIssuer).where(TrustedIssuer.issuer_id == issuer_id)
                       .values(version=TrustedIssuer.version + 1, updated_at=clock.now())
                       .execution_options(synchronize_session=False))


# --- input rules ----------------------------------------------------------------------------

def clean_issuer_url(value: object) -> str:
    """An issuer identifier as the assertions' iss carries it (RFC 8414 §2, OpenID Connect Discovery
    §3): an https URL with a host and no query or fragment, compared exactly. Plain http only where
    key fetching allows it (development)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("The issuer URL is required.", field="issuer_url")
    url = value.strip()
    if len(url) > ISSUER_URL_MAX:
        raise InvalidInput(f"The issuer URL must be at most {ISSUER_URL_MAX} characters.", field="issuer_url")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise InvalidInput("The issuer URL must be printable ASCII without spaces.", field="issuer_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidInput("The issuer URL is malformed.", field="issuer_url") from None
    allow_http = key_fetcher().allow_insecure
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_http):
        raise InvalidInput("The issuer URL must use https.", field="issuer_url")
    if not parts.hostname:
        raise InvalidInput("The issuer URL has no host.", field="issuer_url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("The issuer URL must not carry credentials (user@host).", field="issuer_url")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidInput("The issuer URL must not have a query or fragment.", field="issuer_url")
    return url


def clean_audience(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("The audience is required: the value the issuer's tokens carry in aud for this server.",
                           field="audience")
    audience = value.strip()
    if len(audience) > AUDIENCE_MAX or not audience.isprintable():
        raise InvalidInput(f"The audience must be printable text of at most {AUDIENCE_MAX} characters.",
                           field="audience")
    return audience


def parse_claim_conditions(value: object) -> dict[str, str]:
    """Claim conditions as NAME=VALUE strings (or a JSON object of names to values): each names a
    top-level claim of the issuer's tokens and the exact value it must have. Spaces around a NAME=VALUE
    string's name and value are dropped, the same from every door ("sub = x" is sub=x)."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        pairs = []
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise InvalidInput(f"A claim condition must be NAME=VALUE, not {str(item)[:60]!r}.", field="claims")
            name, _, wanted = item.partition("=")
            pairs.append((name.strip(), wanted.strip()))
    else:
        raise InvalidInput("Claim conditions must be a list of NAME=VALUE or an object of names to values.",
                           field="claims")
    if not pairs:
        raise InvalidInput("A rule needs at least one claim condition: nothing maps to an account by default.",
                           field="claims")
    if len(pairs) > MAX_CONDITIONS_PER_RULE:
        raise InvalidInput(f"A rule has at most {MAX_CONDITIONS_PER_RULE} claim conditions.", field="claims")
    conditions: dict[str, str] = {}
    for name, wanted in pairs:
        if not isinstance(name, str) or not name or len(name) > CLAIM_NAME_MAX or not name.isprintable():
            raise InvalidInput(f"A claim name must be 1 to {CLAIM_NAME_MAX} printable characters.", field="claims")
        if not isinstance(wanted, str) or not wanted or len(wanted) > CLAIM_VALUE_MAX or not wanted.isprintable():
            raise InvalidInput(f"The value of claim {name!r} must be 1 to {CLAIM_VALUE_MAX} printable characters.",
                               field="claims")
        if name in conditions:
            raise InvalidInput(f"The claim {name!r} is named twice in one rule.", field="claims")
        conditions[name] = wanted
    return conditions


def claim_matches(value: object, wanted: str) -> bool:
    """A condition holds when the claim is that exact string; a boolean or integer claim is compared by
    its JSON text (`true`, `42`). Arrays, objects and other numbers never match."""
    if isinstance(value, str):
        return value == wanted
    if isinstance(value, bool) or isinstance(value, int):
        return json.dumps(value) == wanted
    return False


def rule_matches(claims: dict[str, Any], conditions: dict[str, str]) -> bool:
    """Every condition of a rule must hold."""
    return all(name in claims and claim_matches(claims[name], wanted) for name, wanted in conditions.items())


def parse_pasted_jwks(text: object) -> dict[str, Any]:
    """A pasted JWK Set under the rules of fetched ones (public signing keys only): its keys by kid."""
    from ..keyfetch import KeyFetchError, _parse_jwks  # one parser for fetched and pasted sets

    if isinstance(text, dict):
        text = json.dumps(text)
    if not isinstance(text, (str, bytes)):
        raise InvalidInput("The JWK Set must be JSON text or an object.", field="jwks")
    body = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(body) > PASTED_JWKS_MAX_BYTES:
        raise InvalidInput(f"The JWK Set is larger than {PASTED_JWKS_MAX_BYTES} bytes.", field="jwks")
    try:
        return _parse_jwks(body, PASTED_JWKS_LABEL)
    except KeyFetchError as exc:
        raise InvalidInput(exc.message, field="jwks") from None


# --- issuers --------------------------------------------------------------------------------

def get_issuer(issuer_id: str, org_id: str | None = None) -> TrustedIssuer:
    issuer = db.session.get(TrustedIssuer, issuer_id) if is_identifier(issuer_id) else None
    if issuer is None or (org_id is not None and issuer.org_id != org_id):
        raise NotFound("Trusted issuer not found.")
    return issuer


def list_issuers(org_id: str) -> list[TrustedIssuer]:
    get_organization(org_id)
    query = select(TrustedIssuer).where(TrustedIssuer.org_id == org_id)
    return list(db.session.scalars(query.order_by(TrustedIssuer.created_at, TrustedIssuer.issuer_id)))


def _fetch_keys_now(issuer_url: str, jwks_uri: str | None) -> tuple[str, tuple[str, ...]]:
    """Fetch the issuer's keys now, so a mistake is told at registration: (JWK Set URL, kids)."""
    from ..keyfetch import KeyFetchError, check_url

    fetcher = key_fetcher()
    try:
        if jwks_uri is None:
            fetcher.forget(issuer_url.rstrip("/") + "/.well-known/openid-configuration")
            url = fetcher.discover_jwks_uri(issuer_url)
        else:
            check_url(jwks_uri, allow_insecure=fetcher.allow_insecure)
            url = jwks_uri
        fetcher.forget(url)  # what the URL serves now, not a failure cached a minute ago
        keys = fetcher.keys(url)
    except KeyFetchError as exc:
        raise InvalidInput(exc.message, field="issuer_url" if jwks_uri is None else "jwks_uri") from None
    return url, tuple(sorted(keys))


@transactional
def add_issuer(org_id: str, issuer_url: object, audience: object, jwks_uri: object = None, jwks: object = None,
               actor: Actor = CLI_ACTOR) -> TrustedIssuer:
    """Register a trusted issuer. Without jwks_uri or jwks its keys are found by OIDC discovery at the
    issuer URL. A URL is fetched now and refused unless it yields a usable signing key."""
    org = get_organization(org_id)
    url = clean_issuer_url(issuer_url)
    aud = clean_audience(audience)
    if jwks_uri is not None and jwks is not None:
        raise InvalidInput("Give the issuer's keys one way: a jwks_uri or a pasted JWK Set, not both.", field="jwks")
    if jwks_uri is not None and (not isinstance(jwks_uri, str) or not jwks_uri.strip()):
        raise InvalidInput("The jwks_uri must be a URL.", field="jwks_uri")
    existing = db.session.scalar(select(TrustedIssuer).where(TrustedIssuer.org_id == org.org_id,
                                                             TrustedIssuer.issuer_url == url))
    if existing is not None:
        raise Conflict(f"This organization already trusts the issuer {url} ({existing.issuer_id}).",
                       field="issuer_url")
    count = db.session.scalar(select(func.count()).select_from(TrustedIssuer).where(TrustedIssuer.org_id == org.org_id))
    if (count or 0) >= MAX_ISSUERS_PER_ORG:
        raise Conflict(f"An organization may trust at most {MAX_ISSUERS_PER_ORG} issuers; delete an unused one first.")
    details: dict[str, Any] = {"issuer_url": url, "audience": aud}
    pasted = None
    if jwks is not None:
        keys = parse_pasted_jwks(jwks)
        pasted = json.dumps({"keys": [keys[kid].jwk for kid in sorted(keys)]}, sort_keys=True)
        details.update(keys_from=KEYS_PASTED, key_ids=sorted(keys))
    else:
        uri = jwks_uri.strip() if isinstance(jwks_uri, str) else None
        fetched_from, key_ids = _fetch_keys_now(url, uri)
        jwks_uri = uri
        details.update(keys_from=KEYS_FROM_JWKS_URI if uri else KEYS_FROM_DISCOVERY,
                       jwks_uri=shown_url(fetched_from), key_ids=list(key_ids))
    now = clock.now()
    issuer = TrustedIssuer(issuer_id=new_id("issuer_"), org_id=org.org_id, issuer_url=url, audience=aud,
                           jwks_uri=jwks_uri, jwks=pasted, version=0, created_at=now, updated_at=now)
    db.session.add(issuer)
    try:
        db.session.flush()
    except IntegrityError:  # the same issuer registered at the same instant by another request
        db.session.rollback()
        raise Conflict(f"This organization already trusts the issuer {url}.", field="issuer_url") from None
    record_event(actor, org.org_id, "trusted_issuer.created", "trusted_issuer", issuer.issuer_id, **details)
    return issuer


@transactional
def delete_issuer(issuer_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> TrustedIssuer:
    """Delete an issuer with its rules and allowed clients: its assertions are refused from the very
    next request on, in every worker (the row the token path looks up is gone). Tokens it already
    obtained stay valid until they expire or are revoked."""
    issuer = get_issuer(issuer_id, org_id)
    rules = db.session.scalar(select(func.count()).select_from(TrustedIssuerRule)
                              .where(TrustedIssuerRule.issuer_id == issuer.issuer_id))
    db.session.execute(delete(TrustedIssuerRule).where(TrustedIssuerRule.issuer_id == issuer.issuer_id))
    db.session.execute(delete(TrustedIssuerClient).where(TrustedIssuerClient.issuer_id == issuer.issuer_id))
    db.session.delete(issuer)
    record_event(actor, issuer.org_id, "trusted_issuer.deleted", "trusted_issuer", issuer.issuer_id,
                 issuer_url=issuer.issuer_url, rules=rules)
    if issuer.jwks_uri is not None:
        key_fetcher().forget(issuer.jwks_uri)
    return issuer


def keys_status(issuer: TrustedIssuer) -> IssuerKeysStatus:
    """Where the issuer's keys come from and what this process holds of them (fetched now when it holds
    nothing fresh, as the token path would; a failure is reported, not raised)."""
    from ..keyfetch import KeyFetchError

    source = key_source(issuer)
    if source == KEYS_PASTED and issuer.jwks is not None:
        kids = tuple(sorted(key.get("kid", "") for key in json.loads(issuer.jwks)["keys"]))
        return IssuerKeysStatus(source, None, kids, None, None)
    fetcher = key_fetcher()
    url, error = issuer.jwks_uri, None
    try:
        if url is None:
            url = fetcher.discover_jwks_uri(issuer.issuer_url)
        fetcher.keys(url)
    except KeyFetchError as exc:
        error = exc.message
    if url is None:
        return IssuerKeysStatus(source, None, (), None, error)
    status = fetcher.status(url)
    return IssuerKeysStatus(source, url, status.key_ids, status.last_success, status.last_error or error)


# --- rules ----------------------------------------------------------------------------------

def list_rules(issuer_id: str, org_id: str | None = None) -> list[TrustedIssuerRule]:
    issuer = get_issuer(issuer_id, org_id)
    query = select(TrustedIssuerRule).where(TrustedIssuerRule.issuer_id == issuer.issuer_id)
    return list(db.session.scalars(query.order_by(TrustedIssuerRule.position, TrustedIssuerRule.rule_id)))


def rule_conditions(rule: TrustedIssuerRule) -> dict[str, str]:
    conditions: dict[str, str] = json.loads(rule.claims)
    return conditions


@transactional
def add_rule(issuer_id: str, account_id: str, claims: object, scope: object = None, resource: object = None,
             org_id: str | None = None, actor: Actor = CLI_ACTOR) -> TrustedIssuerRule:
    """Add a rule after the issuer's others: an assertion whose claims meet every condition (and that no
    earlier rule matched) obtains tokens for this account, limited to `scope` and `resource` when given."""
    issuer = get_issuer(issuer_id, org_id)
    if not is_identifier(account_id):
        raise NotFound("No account with this id in the issuer's organization.", field="account_id")
    try:
        account = get_account(account_id, issuer.org_id)
    except NotFound:
        raise NotFound("No account with this id in the issuer's organization.", field="account_id") from None
    conditions = parse_claim_conditions(claims)
    scopes = None
    if scope is not None:
        scopes = parse_scope_list(scope)
        if not scopes:
            raise InvalidInput("The rule's scope is empty: leave it out to let the client's grant decide.",
                               field="scope")
    api = None
    if resource is not None:
        if not is_valid_identifier(resource):
            raise InvalidInput("The rule's resource must be an API identifier: an absolute URI without a fragment.",
                               field="resource")
        api = resource
    last = db.session.scalar(select(func.max(TrustedIssuerRule.position))
                             .where(TrustedIssuerRule.issuer_id == issuer.issuer_id))
    count = db.session.scalar(select(func.count()).select_from(TrustedIssuerRule)
                              .where(TrustedIssuerRule.issuer_id == issuer.issuer_id))
    if (count or 0) >= MAX_RULES_PER_ISSUER:
        raise Conflict(f"An issuer has at most {MAX_RULES_PER_ISSUER} rules; delete an unused one first.")
    rule = TrustedIssuerRule(rule_id=new_id("rule_"), issuer_id=issuer.issuer_id, position=(last or 0) + 1,
                             account_id=account.account_id, claims=json.dumps(conditions, sort_keys=True),
                             scope=" ".join(scopes) if scopes is not None else None, resource=api,
                             created_at=clock.now())
    db.session.add(rule)
    bump_issuer_version(issuer.issuer_id)
    record_event(actor, issuer.org_id, "trusted_issuer.rule_added", "trusted_issuer", issuer.issuer_id,
                 rule_id=rule.rule_id, account_id=account.account_id, claims=conditions, scope=rule.scope,
                 resource=api)
    return rule


@transactional
def delete_rule(issuer_id: str, rule_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    issuer = get_issuer(issuer_id, org_id)
    rule = db.session.get(TrustedIssuerRule, rule_id) if is_identifier(rule_id) else None
    if rule is None or rule.issuer_id != issuer.issuer_id:
        raise NotFound("Rule not found.")
    db.session.delete(rule)
    bump_issuer_version(issuer.issuer_id)
    record_event(actor, issuer.org_id, "trusted_issuer.rule_deleted", "trusted_issuer", issuer.issuer_id,
                 rule_id=rule.rule_id, account_id=rule.account_id)


# --- allowed clients ------------------------------------------------------------------------

def allowed_clients(issuer_id: str, org_id: str | None = None) -> list[Client]:
    issuer = get_issuer(issuer_id, org_id)
    query = (select(Client).join(TrustedIssuerClient, TrustedIssuerClient.client_id == Client.client_id)
             .where(TrustedIssuerClient.issuer_id == issuer.issuer_id)
             .order_by(TrustedIssuerClient.created_at, Client.client_id))
    return list(db.session.scalars(query))


def _client_of_issuer_org(issuer: TrustedIssuer, client_id: str) -> Client:
    try:
        return get_client(client_id, issuer.org_id)
    except NotFound:
        raise NotFound("No client with this id in the issuer's organization.", field="client_id") from None


@transactional
def allow_client(issuer_id: str, client_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> Client:
    """Let a client of the issuer's organization present the issuer's assertions."""
    issuer = get_issuer(issuer_id, org_id)
    client = _client_of_issuer_org(issuer, client_id)
    if db.session.get(TrustedIssuerClient, (issuer.issuer_id, client.client_id)) is not None:
        raise Conflict("This client is already allowed to present the issuer's assertions.", field="client_id")
    db.session.add(TrustedIssuerClient(issuer_id=issuer.issuer_id, client_id=client.client_id, created_at=clock.now()))
    try:
        db.session.flush()
    except IntegrityError:  # allowed at the same instant by another request
        db.session.rollback()
        raise Conflict("This client is already allowed to present the issuer's assertions.",
                       field="client_id") from None
    bump_issuer_version(issuer.issuer_id)
    record_event(actor, issuer.org_id, "trusted_issuer.client_allowed", "trusted_issuer", issuer.issuer_id,
                 client_id=client.client_id)
    return client


@transactional
def disallow_client(issuer_id: str, client_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    """The client's next request with the issuer's assertion is refused."""
    issuer = get_issuer(issuer_id, org_id)
    link = db.session.get(TrustedIssuerClient, (issuer.issuer_id, client_id)) if is_identifier(client_id) else None
    if link is None:
        raise NotFound("This client is not allowed for the issuer.", field="client_id")
    db.session.delete(link)
    bump_issuer_version(issuer.issuer_id)
    record_event(actor, issuer.org_id, "trusted_issuer.client_disallowed", "trusted_issuer", issuer.issuer_id,
                 client_id=client_id)
