"""Assertions signed by a trusted issuer (workload identity federation, SPEC §10): a JWT bearer grant
assertion (RFC 7523 §2.1) whose `iss` is the URL of an issuer the client's organization trusts and
the client is allowed for, verified with that issuer's keys (fetched through the shared KeyFetcher:
cached, refetched on an unknown kid at most once a minute, the last good keys kept while the issuer
is briefly unreachable) under the same header and time rules as a client's own assertions. The first
rule whose claim conditions all hold names the account; nothing maps by default."""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from .. import store
from ..config import Settings
from ..crypto.jws import CompactJWS, signature_valid
from ..crypto.keys import ParsedPublicKey, load_public_jwk
from ..keyfetch import KeyFetcher, KeyFetchError
from ..models import TrustedIssuer, TrustedIssuerClient, TrustedIssuerRule
from ..services.trusted_issuers import ISSUER_URL_MAX, rule_matches
from ..store import Prepared
from .assertions import GRANT_RULES, ClientKeySet, check_validity_times
from .constants import JTI_MAX_LENGTH
from .errors import InvalidGrantError, InvalidScopeError, InvalidTargetError

NOT_TRUSTED = ("The assertion's iss is neither this client's id nor a trusted issuer this client is allowed "
               "to present assertions of.")
MAPPED_ACCOUNT_INACTIVE = ("The account the trusted issuer's rule names is not an active account of the client's "
                           "organization.")
NO_RULE_MATCHED = ("No rule of the trusted issuer matches the assertion's claims: an assertion obtains a token "
                   "only for the account a matching rule names.")

_ALLOWED_ISSUER = Prepared(
    select(TrustedIssuer.issuer_id, TrustedIssuer.version)
    .join(TrustedIssuerClient, TrustedIssuerClient.issuer_id == TrustedIssuer.issuer_id)
    .where(TrustedIssuer.org_id == bindparam("org"), TrustedIssuer.issuer_url == bindparam("iss"),
           TrustedIssuerClient.client_id == bindparam("cid"))
)
_ISSUER = Prepared(
    select(TrustedIssuer.issuer_url, TrustedIssuer.audience, TrustedIssuer.jwks_uri, TrustedIssuer.jwks)
    .where(TrustedIssuer.issuer_id == bindparam("id"))
)
_RULES = Prepared(
    select(TrustedIssuerRule.account_id, TrustedIssuerRule.claims, TrustedIssuerRule.scope, TrustedIssuerRule.resource)
    .where(TrustedIssuerRule.issuer_id == bindparam("id"))
    .order_by(TrustedIssuerRule.position, TrustedIssuerRule.rule_id)
)


@dataclass(frozen=True)
class IssuerRule:
    account_id: str
    conditions: dict[str, str]
    scopes: frozenset[str] | None  # the most a token may carry (None: the client's grant decides)
    resource: str | None  # the only API its tokens may be for (None: any the client may use)


@dataclass(frozen=True)
class IssuerConfig:
    issuer_id: str
    issuer_url: str
    audience: str
    jwks_uri: str | None  # None with no pasted keys: OIDC discovery at the issuer URL
    pasted: dict[str, ParsedPublicKey]
    rules: tuple[IssuerRule, ...]


@dataclass(frozen=True)
class FederatedAssertion:
    """A verified assertion of a trusted issuer and the rule it matched."""

    subject: str  # the account the rule names: the token's sub
    jti: str | None  # single use per issuer when present
    expires_at: int
    issuer_id: str
    scopes: frozenset[str] | None
    resource: str | None


def names_external_issuer(iss: object) -> bool:
    """Whether an iss that is not the client's id names an external issuer (a URL); anything else
    (another client's id, no iss) goes through the client's own assertion rules and their errors."""
    return isinstance(iss, str) and "://" in iss


def rule_resource(assertion: FederatedAssertion, requested: str | None) -> str | None:
    """The API the token is for: a rule limited to one API makes it the default, and refuses others."""
    if assertion.resource is None:
        return requested
    if requested and requested != assertion.resource:
        raise InvalidTargetError(f"The trusted issuer's rule allows tokens only for {assertion.resource}.")
    return assertion.resource


def rule_scope(assertion: FederatedAssertion, api, granted: str, requested: bool) -> str:
    """The token's scope within the rule's: a request beyond it is refused, none asked for means the
    scopes both the client's grant and the rule allow."""
    if assertion.scopes is None:
        return granted
    wanted = set(granted.split()) if granted else set()
    if requested and not wanted <= assertion.scopes:
        raise InvalidScopeError(description=f"The requested scope exceeds the scopes the trusted issuer's rule "
                                            f"allows for {api.identifier}.")
    return " ".join(sorted(wanted & assertion.scopes))


class TrustedIssuerCache:
    """Each issuer's settings, keys and rules parsed once per version (bumped in SQL on every change),
    so the token path runs one lookup per request and sees a change on the very next one."""

    def __init__(self, fetcher: KeyFetcher | None, max_entries: int = 10000):
        self.fetcher = fetcher
        self._entries: dict[str, tuple[int, IssuerConfig]] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def config_for(self, org_id: str, client_id: str, issuer_url: str) -> IssuerConfig | None:
        """The issuer of the client's organization with this URL, if the client is allowed for it."""
        if len(issuer_url) > ISSUER_URL_MAX or not issuer_url.isprintable():
            return None  # no stored issuer has such a URL (and PostgreSQL refuses NUL in text)
        row = store.fetch_one(_ALLOWED_ISSUER, {"org": org_id, "iss": issuer_url, "cid": client_id})
        if row is None:
            return None
        issuer_id, version = row
        entry = self._entries.get(issuer_id)
        if entry is None or entry[0] != version:
            entry = (version, _load(issuer_id))
            with self._lock:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[issuer_id] = entry
        return entry[1]

    def verify(self, jws: CompactJWS, client_id: str, org_id: str, settings: Settings) -> FederatedAssertion:
        """RFC 7523 §3 for an assertion whose iss is a trusted issuer's URL; InvalidGrantError otherwise."""
        config = self.config_for(org_id, client_id, jws.claims["iss"])
        if config is None:
            raise InvalidGrantError(description=NOT_TRUSTED)
        keys = self._keys(config)
        key = _select_key(jws.header, keys)
        alg = jws.header["alg"]
        if alg not in key.algs:
            raise InvalidGrantError(description=f"The assertion's alg does not fit the trusted issuer's "
                                                f"{key.key_type} key.")
        if not signature_valid(jws, alg, key.key):
            raise InvalidGrantError(description="The assertion's signature does not verify with the trusted "
                                                "issuer's key.")
        claims = jws.claims
        for name in ("sub", "aud", "exp"):
            if name not in claims:
                raise InvalidGrantError(description=f"The assertion lacks the required claim {name}.")
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or config.audience not in audiences:
            raise InvalidGrantError(description="The assertion's aud does not contain the audience configured "
                                                "for this trusted issuer.")
        exp = check_validity_times(claims, settings, GRANT_RULES)
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not jti or len(jti) > JTI_MAX_LENGTH
                                or not jti.isprintable()):
            raise InvalidGrantError(description=f"The assertion's jti must be a string of 1 to {JTI_MAX_LENGTH} "
                                                "characters.")
        for rule in config.rules:
            if rule_matches(claims, rule.conditions):
                # Rounded up: a replay record must not expire before the assertion does.
                return FederatedAssertion(subject=rule.account_id, jti=jti, expires_at=math.ceil(exp),
                                          issuer_id=config.issuer_id, scopes=rule.scopes, resource=rule.resource)
        raise InvalidGrantError(description=NO_RULE_MATCHED)

    def _keys(self, config: IssuerConfig) -> ClientKeySet:
        if config.pasted or self.fetcher is None:
            return ClientKeySet(config.pasted)
        url = config.jwks_uri
        if url is None:
            try:
                url = self.fetcher.discover_jwks_uri(config.issuer_url)
            except KeyFetchError as exc:
                raise InvalidGrantError(
                    description=f"The trusted issuer's keys cannot be fetched: {exc.message}") from None
        return ClientKeySet({}, url, self.fetcher)


def _with_fetch_error(description: str, keys: ClientKeySet) -> str:
    if keys.fetch_error is None:
        return description
    return f"{description} The trusted issuer's keys cannot be fetched: {keys.fetch_error}"


def _select_key(header: dict, keys: ClientKeySet) -> ParsedPublicKey:
    """kid selects among the issuer's keys (jwk, jku, x5u and x5c never do: RFC 8725 §3.10)."""
    kid = header.get("kid")
    if kid is not None:
        key = keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidGrantError(description=_with_fetch_error(
                "The assertion's kid does not name a key of the trusted issuer.", keys))
        return key
    candidates = keys.all()
    if not candidates:
        raise InvalidGrantError(description=_with_fetch_error(
            "The trusted issuer has no usable key to verify the assertion with.", keys))
    if len(candidates) > 1:
        raise InvalidGrantError(description="The trusted issuer has several keys: the assertion header must "
                                            "carry a kid.")
    return next(iter(candidates.values()))


def _load(issuer_id: str) -> IssuerConfig:
    issuer_url, audience, jwks_uri, jwks = store.fetch_one(_ISSUER, {"id": issuer_id})
    pasted = {}
    if jwks is not None:
        for jwk in json.loads(jwks)["keys"]:
            pasted[jwk["kid"]] = load_public_jwk(json.dumps(jwk))
    rules = tuple(
        IssuerRule(account_id=account_id, conditions=json.loads(claims),
                   scopes=frozenset(scope.split(" ")) if scope else None, resource=resource)
        for account_id, claims, scope, resource in store.fetch_all(_RULES, {"id": issuer_id})
    )
    return IssuerConfig(issuer_id=issuer_id, issuer_url=issuer_url, audience=audience, jwks_uri=jwks_uri,
                        pasted=pasted, rules=rules)
