"""Verification of JWTs signed by a client's keys (RFC 7523 §3, RFC 8725): the JWT bearer grant's
`assertion` (§2.1) and the `client_assertion` of private_key_jwt client authentication (§2.2). One
set of rules; `AssertionRules` says only what differs between the two uses (the parameter named in
descriptions, the accepted audience, the error code)."""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .. import clock, token_store
from ..config import Settings
from ..crypto.jws import CompactJWS, MalformedJWS, numeric_date, parse_compact, signature_valid
from ..crypto.keys import ASSERTION_ALGS, ParsedPublicKey, load_public_jwk
from ..keyfetch import KeyFetcher, KeyFetchError
from .constants import JTI_MAX_LENGTH, PATH_TOKEN
from .errors import InvalidGrantError, InvalidRequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifiedAssertion:
    subject: str
    jti: str
    expires_at: int


@dataclass(frozen=True)
class AssertionRules:
    """What differs between the uses of a client-signed JWT; every check is the same."""

    parameter: str  # the request parameter, as descriptions name it
    endpoint_path: str  # aud may be the issuer or the issuer + this path
    endpoint_label: str  # how descriptions name that URL
    error: Callable[[str], Exception]  # the OAuth error of a refused JWT, from its description
    # When set, every failure to find the verifying key or to verify the signature answers this one
    # description, so the answer does not tell whether the client named by iss exists.
    key_failure: str | None = None


GRANT_RULES = AssertionRules(
    parameter="assertion", endpoint_path=PATH_TOKEN, endpoint_label="token endpoint URL",
    error=lambda description: InvalidGrantError(description=description),
)


class ClientKeySet:
    """The keys that may verify one client's JWTs: its pasted keys and, when it registered a key URL,
    that URL's keys, fetched through the process's shared KeyFetcher (its cache, its refetch on an
    unknown kid at most once a minute, its last good keys while the URL fails). A pasted key wins a
    kid that the URL's set also holds."""

    def __init__(self, pasted: dict[str, ParsedPublicKey], jwks_uri: str | None = None,
                 fetcher: KeyFetcher | None = None, on_fetch: Callable[[str, str | None], None] | None = None):
        self.pasted = pasted
        self.jwks_uri = jwks_uri if fetcher is not None else None
        self.fetch_error: str | None = None  # why the URL's keys could not be had, when they could not
        self._fetcher = fetcher
        self._on_fetch = on_fetch
        self._from_url: dict[str, ParsedPublicKey] | None = None

    def _url_keys(self) -> dict[str, ParsedPublicKey]:
        if self._from_url is None:
            self._from_url = {}
            if self.jwks_uri is not None and self._fetcher is not None:
                try:
                    self._from_url = self._fetcher.keys(self.jwks_uri)
                except KeyFetchError as exc:
                    self.fetch_error = exc.message
                self._observed()
        return self._from_url

    def _observed(self) -> None:
        if self._on_fetch is not None and self._fetcher is not None and self.jwks_uri is not None:
            self._on_fetch(self.jwks_uri, self._fetcher.status(self.jwks_uri).last_error)

    def find(self, kid: str) -> ParsedPublicKey | None:
        """The key with this kid; an unknown kid makes the URL's set be fetched again (rate-limited)."""
        key = self.pasted.get(kid)
        if key is not None or self.jwks_uri is None or self._fetcher is None:
            return key
        key = self._url_keys().get(kid)
        if key is None and self.fetch_error is None:
            try:
                key = self._fetcher.key_for(self.jwks_uri, kid)  # None also when the refetch failed
            except KeyFetchError:  # the cached set expired meanwhile and cannot be fetched again
                key = None
            if key is None:
                self.fetch_error = self._fetcher.status(self.jwks_uri).last_error
                self._observed()
        return key

    def all(self) -> dict[str, ParsedPublicKey]:
        return {**self._url_keys(), **self.pasted}


class ClientKeyCache:
    """Parsed pasted keys and the key URL per client, keyed on the client's keys_version so an added
    or deleted key, or a changed URL, is seen on the very next request without re-parsing keys on
    every one. The URL's keys are cached by the KeyFetcher itself."""

    def __init__(self, fetcher: KeyFetcher | None = None, max_clients: int = 10000):
        self.fetcher = fetcher
        self._entries: dict[str, tuple[int, dict[str, ParsedPublicKey], str | None]] = {}
        self._max = max_clients
        self._lock = threading.Lock()
        self._failing: set[tuple[str, str]] = set()  # (client, URL) whose last fetch failed, logged once

    def keys_for(self, client_id: str, keys_version: int) -> ClientKeySet:
        entry = self._entries.get(client_id)
        if entry is None or entry[0] != keys_version:
            keys = {kid: load_public_jwk(jwk) for kid, jwk in token_store.client_keys(client_id)}
            entry = (keys_version, keys, token_store.client_jwks_uri(client_id))
            with self._lock:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[client_id] = entry
        return ClientKeySet(entry[1], entry[2], self.fetcher,
                            on_fetch=lambda url, error: self._note_fetch(client_id, url, error))

    def _note_fetch(self, client_id: str, url: str, error: str | None) -> None:
        """One log line when a client's key URL starts failing and one when it works again, not one per request."""
        marker = (client_id, url)
        if error is not None and marker not in self._failing:
            with self._lock:
                if len(self._failing) >= self._max:
                    self._failing.clear()
                self._failing.add(marker)
            log.warning("client %s: the keys at its key URL cannot be fetched: %s", client_id, error)
        elif error is None and marker in self._failing:
            self._failing.discard(marker)
            log.info("client %s: the keys at its key URL are fetched again", client_id)


def _key_error(rules: AssertionRules, description: str) -> Exception:
    return rules.error(rules.key_failure or description)


def _with_fetch_error(description: str, keys: ClientKeySet) -> str:
    if keys.fetch_error is None:
        return description
    return f"{description} The client's key URL could not be fetched: {keys.fetch_error}"


def _select_key(header: dict, keys: ClientKeySet, rules: AssertionRules) -> ParsedPublicKey:
    p = rules.parameter
    kid = header.get("kid")
    if kid is not None:
        key = keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise _key_error(rules, _with_fetch_error(
                f"The {p}'s kid does not name a key registered for this client.", keys))
        return key
    candidates = keys.all()
    if not candidates:
        raise _key_error(rules, _with_fetch_error(
            f"This client has no registered public key to verify the {p} with.", keys))
    if len(candidates) > 1:
        raise _key_error(rules, f"The client has several keys: the {p} header must carry a kid.")
    return next(iter(candidates.values()))


def parse_assertion(assertion: str, settings: Settings, rules: AssertionRules = GRANT_RULES) -> CompactJWS:
    """The JWS with its header checked (RFC 8725 §3.1, §3.10; RFC 7515 §4.1.11): size, form, an
    asymmetric alg, no crit. Nothing here depends on the client, so it runs before one is looked up."""
    p = rules.parameter
    if len(assertion.encode("utf-8", "surrogatepass")) > settings.assertion_max_bytes:
        raise InvalidRequestError(f"The {p} is larger than {settings.assertion_max_bytes} bytes.")
    try:
        jws = parse_compact(assertion)
    except MalformedJWS:
        raise rules.error(f"The {p} is not a well-formed signed JWT (JWS compact serialization).") from None
    if jws.header.get("alg") not in ASSERTION_ALGS:
        raise rules.error(
            f"The {p}'s alg is not accepted: use an asymmetric algorithm (RS*, PS*, ES*, EdDSA); "
            "none and HS* are refused."
        )
    if "crit" in jws.header:
        raise rules.error(f"The {p} carries critical header parameters (crit) this server does not understand.")
    return jws


def check_validity_times(claims: dict, settings: Settings, rules: AssertionRules) -> float:
    """RFC 7523 §3 items 4-6: exp required, not passed and at most the maximum lifetime ahead; nbf and
    iat not in the future; each with the clock skew. The exp."""
    p = rules.parameter
    now = clock.now()
    skew = settings.clock_skew
    exp = numeric_date(claims["exp"])
    if exp is None:
        raise rules.error(f"The {p}'s exp must be a NumericDate.")
    if exp <= now - skew:
        raise rules.error(f"The {p} has expired (exp).")
    if exp - now > settings.assertion_max_lifetime + skew:
        raise rules.error(
            f"The {p}'s exp is too far ahead: at most {settings.assertion_max_lifetime} seconds are accepted."
        )
    for name in ("nbf", "iat"):
        if name in claims:
            value = numeric_date(claims[name])
            if value is None:
                raise rules.error(f"The {p}'s {name} must be a NumericDate.")
            if value > now + skew:
                raise rules.error(f"The {p} is not valid yet (nbf or iat in the future).")
    return exp


def verify_assertion(assertion: str | CompactJWS, client_id: str, keys: ClientKeySet | dict[str, ParsedPublicKey],
                     settings: Settings, rules: AssertionRules = GRANT_RULES) -> VerifiedAssertion:
    """RFC 7523 §3: signature by a registered key with a pinned asymmetric alg, then iss, sub, aud,
    exp (required, bounded), nbf and iat (with the clock skew), jti (required)."""
    jws = assertion if isinstance(assertion, CompactJWS) else parse_assertion(assertion, settings, rules)
    if not isinstance(keys, ClientKeySet):
        keys = ClientKeySet(keys)
    p, header, alg = rules.parameter, jws.header, jws.header["alg"]
    key = _select_key(header, keys, rules)  # jwk, jku, x5u and x5c are never consulted (RFC 8725 §3.10)
    if alg not in key.algs:
        raise _key_error(rules, f"The {p}'s alg does not fit the selected {key.key_type} key.")
    if not signature_valid(jws, alg, key.key):
        raise _key_error(rules, f"The {p}'s signature does not verify with the client's registered key.")

    def claim_error(message: str) -> Exception:
        return rules.error(message)

    claims = jws.claims
    for name in ("iss", "sub", "aud", "exp", "jti"):
        if name not in claims:
            raise claim_error(f"The {p} lacks the required claim {name}.")
    if claims["iss"] != client_id:
        raise claim_error(f"The {p}'s iss must be the client_id of the authenticated client.")
    audience = claims["aud"]
    audiences = [audience] if isinstance(audience, str) else audience
    accepted = (settings.issuer, settings.issuer + rules.endpoint_path)
    if not isinstance(audiences, list) or not any(isinstance(a, str) and a in accepted for a in audiences):
        raise claim_error(f"The {p}'s aud must be this server's issuer or {rules.endpoint_label}.")
    exp = check_validity_times(claims, settings, rules)
    subject, jti = claims["sub"], claims["jti"]
    # Printable text only: a NUL or a lone UTF-16 surrogate (a "\ud800" escape) names nothing and
    # cannot even be stored or compared by the database.
    if not isinstance(subject, str) or not subject or len(subject) > 255 or not subject.isprintable():
        raise claim_error(f"The {p}'s sub must be a non-empty string.")
    if not isinstance(jti, str) or not jti or len(jti) > JTI_MAX_LENGTH or not jti.isprintable():
        raise claim_error(f"The {p}'s jti must be a string of 1 to {JTI_MAX_LENGTH} characters.")
    # Rounded up: a replay record must not expire before the assertion does (exp may be fractional).
    return VerifiedAssertion(subject=subject, jti=jti, expires_at=math.ceil(exp))
