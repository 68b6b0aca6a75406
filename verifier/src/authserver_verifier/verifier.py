"""Offline verification of authserver's RFC 9068 access tokens, and RFC 7662 introspection."""
from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ._http import FetchError, check_http_url, fetch, max_age
from .errors import InsufficientScope, InvalidToken, VerifierUnavailable

log = logging.getLogger("authserver_verifier")

DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
SUPPORTED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                                  "EdDSA"})
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4, compared case-insensitively
METADATA_SUFFIX = "/.well-known/oauth-authorization-server"   # RFC 8414 §3
RESOURCE_METADATA_PREFIX = "/.well-known/oauth-protected-resource"  # RFC 9728 §3
MAX_TOKEN_LENGTH = 16 * 1024
MIN_RSA_BITS = 2048
# With no keys at all every request fails anyway; retry sooner than min_refresh_interval, but never in a loop.
RETRY_WITHOUT_KEYS = 5.0
_EC_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True)
class AccessToken:
    """An accepted access token. ``claims`` holds every claim (or introspection member) as received."""

    sub: str
    client_id: str
    org_id: str | None
    scopes: frozenset[str]
    aud: str
    jti: str | None
    iat: int | float | None
    exp: int | float | None
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def has_scopes(self, *scopes: str) -> bool:
        return set(scopes) <= self.scopes


@dataclass(frozen=True)
class _Key:
    kid: str
    key: Any  # a cryptography public key
    algorithms: frozenset[str]  # what this key may verify: its type's algorithms, narrowed by the JWK's "alg"


def _key_algorithms(public_key: Any) -> frozenset[str]:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            return frozenset()
        return frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        algorithm = _EC_CURVE_ALGORITHMS.get(public_key.curve.name)
        return frozenset({algorithm}) if algorithm else frozenset()
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return frozenset({"EdDSA"})
    return frozenset()


def parse_jwks(document: Mapping[str, Any]) -> dict[str, tuple[_Key, ...]]:
    """The usable signature keys of a JWK Set by kid. Keys without a kid, symmetric keys, keys for
    encryption only, keys too weak and keys that do not parse are left out (RFC 7517 §5: skip what
    is not understood)."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise FetchError('the JWK Set has no "keys" array')
    found: dict[str, list[_Key]] = {}
    for jwk in keys:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            continue
        if jwk.get("kty") not in ("RSA", "EC", "OKP") or jwk.get("use", "sig") != "sig":
            continue
        key_ops = jwk.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            continue
        public_only = {
            name: value for name, value in jwk.items() if name not in ("d", "p", "q", "dp", "dq", "qi", "oth")
        }
        try:
            public_key = jwt.PyJWK(public_only).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if hasattr(public_key, "public_key"):  # defensively: never hold a private key
            public_key = public_key.public_key()
        algorithms = _key_algorithms(public_key)
        if "alg" in jwk:
            algorithms = algorithms & {jwk["alg"]} if isinstance(jwk["alg"], str) else frozenset()
        if algorithms:
            found.setdefault(jwk["kid"], []).append(_Key(jwk["kid"], public_key, frozenset(algorithms)))
    return {kid: tuple(entries) for kid, entries in found.items()}


def _scope_set(scopes: str | Iterable[str] | None) -> frozenset[str]:
    if scopes is None:
        return frozenset()
    if isinstance(scopes, str):
        return frozenset(scopes.split())
    result = set()
    for scope in scopes:
        if not isinstance(scope, str) or not scope or " " in scope:
            raise ValueError(f"a scope must be a non-empty string without spaces, not {scope!r}")
        result.add(scope)
    return frozenset(result)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _audience_matches(aud: Any, audience: str) -> bool:
    if isinstance(aud, str):
        return aud == audience
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return audience in aud
    return False


def well_known_url(identifier: str, suffix: str) -> str | None:
    """RFC 8414 §3.1 / RFC 9728 §3.1: the well-known path goes between the host and the path
    (a terminating slash after the host is dropped first); None for an identifier that is not an
    http(s) URL."""
    parts = urllib.parse.urlsplit(identifier)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    path = "" if parts.path == "/" else parts.path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, suffix + path, parts.query, ""))


class Verifier:
    """Checks the access tokens of one authorization server (``issuer``) for one API (``audience``).

    Keys are discovered lazily: the RFC 8414 metadata at ``{issuer}/.well-known/oauth-authorization-server``
    names the JWKS, which is cached as its Cache-Control allows (at most ``max_jwks_age`` seconds),
    fetched again when a token names an unknown ``kid`` (at most once per ``min_refresh_interval``
    seconds, whatever the tokens say), and kept when a later fetch fails. One instance is meant to be
    shared by all threads of a process.
    """

    def __init__(self, issuer: str, audience: str, *, algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
                 leeway: float = 60, org_id: str | None = None, timeout: float = 5.0,
                 min_refresh_interval: float = 30, max_jwks_age: float = 300,
                 introspection_client: tuple[str, str] | None = None):
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be the authorization server's issuer identifier (a URL)")
        try:
            check_http_url(issuer)
        except FetchError:
            raise ValueError(f"issuer must be an http(s) URL, not {issuer!r}") from None
        if not isinstance(audience, str) or not audience:
            raise ValueError("audience must be this API's identifier (a non-empty string)")
        if isinstance(algorithms, str):
            algorithms = (algorithms,)
        algorithms = tuple(algorithms)
        for algorithm in algorithms:
            if not isinstance(algorithm, str) or algorithm.lower() == "none" or algorithm.upper().startswith("HS"):
                raise ValueError(f"algorithm {algorithm!r} is never accepted: access tokens are signed with "
                                 "an asymmetric key")
            if algorithm not in SUPPORTED_ALGORITHMS:
                raise ValueError(
                    f"unknown algorithm {algorithm!r}; supported: {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
                )
        if not algorithms:
            raise ValueError("at least one algorithm must be allowed")
        if org_id is not None and (not isinstance(org_id, str) or not org_id):
            raise ValueError("org_id must be a non-empty string or None")
        for name, value in (("leeway", leeway), ("timeout", timeout), ("min_refresh_interval", min_refresh_interval),
                            ("max_jwks_age", max_jwks_age)):
            if not _is_number(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if introspection_client is not None:
            if (not isinstance(introspection_client, tuple) or len(introspection_client) != 2
                    or not all(isinstance(part, str) and part for part in introspection_client)):
                raise ValueError("introspection_client must be a (client_id, client_secret) tuple")

        self.issuer = issuer
        self.audience = audience
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.org_id = org_id
        self.timeout = timeout
        self.min_refresh_interval = min_refresh_interval
        self.max_jwks_age = max_jwks_age
        self._introspection_client = introspection_client

        self._state_lock = threading.Lock()  # guards the fields below; never held across I/O
        self._fetch_lock = threading.Lock()  # one metadata/JWKS fetch at a time
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, tuple[_Key, ...]] | None = None
        self._keys_expire_at = 0.0
        self._last_jwks_attempt: float | None = None
        self._lock_wait = 3 * timeout + 1  # a metadata + JWKS fetch, each bounded by timeout
        # Replaceable in tests: the cache's clock, and the clock tokens' exp/nbf/iat are compared with.
        self._monotonic = time.monotonic
        self._time = time.time

    def __repr__(self) -> str:
        return f"Verifier(issuer={self.issuer!r}, audience={self.audience!r}, org_id={self.org_id!r})"

    @property
    def introspection_client_id(self) -> str | None:
        return self._introspection_client[0] if self._introspection_client else None

    @property
    def resource_metadata_url(self) -> str | None:
        """Where RFC 9728 says this API's protected resource metadata lives (None when the audience
        is not an http(s) URL)."""
        return well_known_url(self.audience, RESOURCE_METADATA_PREFIX)

    def protected_resource_metadata(self, scopes_supported: Iterable[str] | None = None,
                                    resource_name: str | None = None) -> dict[str, Any]:
        """The RFC 9728 §2 document for this API."""
        document: dict[str, Any] = {
            "resource": self.audience,
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
        }
        if scopes_supported is not None:
            document["scopes_supported"] = sorted(_scope_set(scopes_supported))
        if resource_name is not None:
            document["resource_name"] = resource_name
        return document

    # -- offline verification -------------------------------------------------------------------

    def verify(self, token: str, required_scopes: str | Iterable[str] = ()) -> AccessToken:
        """Check ``token`` offline against the issuer's keys; return it, or raise InvalidToken,
        InsufficientScope or VerifierUnavailable. A revoked token still passes until it expires:
        use ``introspect`` where that matters."""
        required = _scope_set(required_scopes)
        _check_token_shape(token)
        header = _unverified_header(token)

        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken('The token is not an access token (its JWT type must be "at+jwt").')
        if "crit" in header:
            raise InvalidToken(
                "The access token carries critical header parameters this resource server does not understand."
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken("The access token is signed with an algorithm this resource server does not accept.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("The access token does not name its signing key (no kid).")

        candidates = [key for key in self._keys_for(kid) if alg in key.algorithms]
        if not candidates:
            raise InvalidToken("The access token's algorithm does not match its signing key.")
        payload = None
        for key in candidates:
            try:
                payload = jwt.PyJWS().decode_complete(token, key=key.key, algorithms=[alg])["payload"]
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                raise InvalidToken("The access token is not a well-formed JWT.") from None
        if payload is None:
            raise InvalidToken("The access token's signature is invalid.")
        try:
            claims = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            claims = None
        if not isinstance(claims, dict):
            raise InvalidToken("The access token's claims are not a JSON object.")

        if claims.get("iss") != self.issuer:
            raise InvalidToken("The access token was issued by another authorization server.")
        for name in ("exp", "iat"):
            if not _is_number(claims.get(name)):
                raise InvalidToken(f'The access token lacks a numeric "{name}" claim.')
        for name in ("sub", "client_id", "jti"):
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise InvalidToken(f'The access token lacks the "{name}" claim.')
        if "nbf" in claims and not _is_number(claims["nbf"]):
            raise InvalidToken('The access token\'s "nbf" claim is not a number.')
        if "scope" in claims and not isinstance(claims["scope"], str):
            raise InvalidToken('The access token\'s "scope" claim is not a string.')
        if "org_id" in claims and not isinstance(claims["org_id"], str):
            raise InvalidToken('The access token\'s "org_id" claim is not a string.')
        return self._accept(claims, required)

    def _accept(self, claims: dict[str, Any], required: frozenset[str]) -> AccessToken:
        """The checks JWT claims and introspection answers share."""
        if not _audience_matches(claims.get("aud"), self.audience):
            raise InvalidToken("The access token is meant for another API (its audience is not this resource server).")
        now = self._time()
        exp = claims.get("exp")
        if exp is not None and exp <= now - self.leeway:
            raise InvalidToken("The access token has expired.")
        if "nbf" in claims and claims["nbf"] > now + self.leeway:
            raise InvalidToken("The access token is not valid yet.")
        if claims.get("iat") is not None and claims["iat"] > now + self.leeway:
            raise InvalidToken("The access token was issued in the future (check the clocks).")
        if self.org_id is not None and claims.get("org_id") != self.org_id:
            raise InvalidToken("The access token belongs to another organization.")
        scopes = frozenset(claims.get("scope", "").split())
        missing = required - scopes
        if missing:
            raise InsufficientScope(f"The access token lacks the scope{'s' if len(missing) > 1 else ''} "
                                    f"{' '.join(sorted(missing))}.", required)
        return AccessToken(sub=claims["sub"], client_id=claims["client_id"], org_id=claims.get("org_id"),
                           scopes=scopes, aud=self.audience, jti=claims.get("jti"), iat=claims.get("iat"),
                           exp=exp, claims=dict(claims))

    # -- keys -----------------------------------------------------------------------------------

    def _keys_for(self, kid: str) -> tuple[_Key, ...]:
        now = self._monotonic()
        with self._state_lock:
            keys, fresh = self._keys, now < self._keys_expire_at
        if keys is not None and kid in keys:
            if fresh:
                return keys[kid]
            # Stale but known: refresh unless another thread is fetching; meanwhile the cache answers.
            acquired = self._fetch_lock.acquire(blocking=False)
        else:
            # Bounded wait: a fetch in progress ends within its own timeout.
            acquired = self._fetch_lock.acquire(timeout=self._lock_wait)
        if acquired:
            try:
                now = self._monotonic()
                with self._state_lock:
                    keys, fresh, last = self._keys, now < self._keys_expire_at, self._last_jwks_attempt
                if not (keys is not None and fresh and kid in keys):
                    retry_after = (self.min_refresh_interval if keys is not None
                                   else min(self.min_refresh_interval, RETRY_WITHOUT_KEYS))
                    if last is None or now - last >= retry_after:
                        self._refresh_keys()
            finally:
                self._fetch_lock.release()
        with self._state_lock:
            keys = self._keys
        if keys is None:
            raise VerifierUnavailable("The authorization server's signing keys could not be fetched yet.")
        if kid not in keys:
            raise InvalidToken("The access token is signed with a key this resource server does not know.")
        return keys[kid]

    def _refresh_keys(self) -> None:
        """Fetch the JWKS (discovering it first when needed); keep the old keys when that fails.
        Called with the fetch lock held."""
        with self._state_lock:
            self._last_jwks_attempt = self._monotonic()
        try:
            jwks_uri = self._load_metadata()["jwks_uri"]
            response = fetch(jwks_uri, timeout=self.timeout)
            if response.status != 200:
                raise FetchError(f"the JWKS at {jwks_uri} answered HTTP {response.status}")
            keys = parse_jwks(response.json_object())
            ttl = max_age(response.headers)
            ttl = self.max_jwks_age if ttl is None else min(ttl, self.max_jwks_age)
        except (FetchError, VerifierUnavailable) as error:
            description = error.description if isinstance(error, VerifierUnavailable) else str(error)
            with self._state_lock:
                self._metadata = None  # discover again next time: the JWKS may have moved
                have_keys = self._keys is not None
            log.warning("authserver_verifier: fetching the signing keys of %s failed (%s); %s", self.issuer,
                        description, "keeping the cached keys" if have_keys else "no keys cached")
            if not have_keys:
                raise VerifierUnavailable(
                    f"The authorization server's signing keys could not be fetched: {description}."
                ) from None
            return
        with self._state_lock:
            self._keys = keys
            self._keys_expire_at = self._monotonic() + ttl
        log.debug("authserver_verifier: %d signing keys of %s cached for %ss", len(keys), self.issuer, ttl)

    def _metadata_urls(self) -> list[str]:
        urls = [self.issuer.rstrip("/") + METADATA_SUFFIX]
        inserted = well_known_url(self.issuer, METADATA_SUFFIX)
        if inserted and inserted not in urls:
            urls.append(inserted)  # RFC 8414 §3.1's form for an issuer with a path
        return urls

    def _load_metadata(self) -> dict[str, Any]:
        """The RFC 8414 metadata, fetched once and then cached (dropped when fetching the JWKS fails)."""
        with self._state_lock:
            if self._metadata is not None:
                return self._metadata
        urls = self._metadata_urls()
        metadata: dict[str, Any] = {}
        for index, url in enumerate(urls):
            try:
                response = fetch(url, timeout=self.timeout)
            except FetchError as error:
                raise VerifierUnavailable(
                    f"The authorization server's metadata could not be fetched: {error}"
                ) from None
            if response.status == 404 and index + 1 < len(urls):
                continue
            if response.status != 200:
                raise VerifierUnavailable(
                    f"The authorization server's metadata at {url} answered HTTP {response.status}"
                )
            try:
                metadata = response.json_object()
            except FetchError as error:
                raise VerifierUnavailable(
                    f"The authorization server's metadata at {url} is unusable: {error}"
                ) from None
            break
        if metadata.get("issuer") != self.issuer:  # RFC 8414 §3.3
            raise VerifierUnavailable(f"The metadata at {url} is for issuer {metadata.get('issuer')!r}, "
                                      f"not {self.issuer!r}")
        for member in ("jwks_uri", "introspection_endpoint"):
            if member not in metadata:
                continue
            try:
                check_http_url(metadata[member])
            except FetchError:
                raise VerifierUnavailable(f"The metadata's {member} is not an http(s) URL") from None
            if self.issuer.startswith("https:") and not metadata[member].startswith("https:"):
                raise VerifierUnavailable(f"The metadata's {member} is not an https URL")
        if "jwks_uri" not in metadata:
            raise VerifierUnavailable("The authorization server's metadata has no jwks_uri")
        with self._state_lock:
            self._metadata = metadata
        return metadata

    def _metadata_member(self, member: str) -> str:
        if not self._fetch_lock.acquire(timeout=self._lock_wait):
            raise VerifierUnavailable("The authorization server's metadata is still being fetched.")
        try:
            metadata = self._load_metadata()
        finally:
            self._fetch_lock.release()
        if member not in metadata:
            raise VerifierUnavailable(f"The authorization server's metadata has no {member}")
        return metadata[member]

    # -- introspection --------------------------------------------------------------------------

    def introspect(self, token: str, required_scopes: str | Iterable[str] = ()) -> AccessToken:
        """Ask the authorization server (RFC 7662) whether ``token`` is active right now, as the
        API's own client; sees revocation, unlike ``verify``. Raises like ``verify``."""
        if self._introspection_client is None:
            raise ValueError("introspect() needs Verifier(..., introspection_client=(client_id, client_secret))")
        required = _scope_set(required_scopes)
        _check_token_shape(token)
        endpoint = self._metadata_member("introspection_endpoint")
        client_id, client_secret = self._introspection_client
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined for Basic.
        credentials = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
        try:
            response = fetch(
                endpoint, timeout=self.timeout,
                data=urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii")},
            )
            if response.status in (401, 403):
                raise FetchError(
                    f"the introspection endpoint refused this API's client credentials (HTTP {response.status})"
                )
            if response.status != 200:
                raise FetchError(f"the introspection endpoint answered HTTP {response.status}")
            answer = response.json_object()
        except FetchError as error:
            log.warning("authserver_verifier: introspection at %s failed: %s", self.issuer, error)
            raise VerifierUnavailable(f"The access token could not be introspected: {error}.") from None
        if answer.get("active") is not True:
            raise InvalidToken("The access token is not active (revoked, expired or unknown).")
        if "iss" in answer and answer["iss"] != self.issuer:
            raise InvalidToken("The access token was issued by another authorization server.")
        for name in ("sub", "client_id"):
            if not isinstance(answer.get(name), str) or not answer[name]:
                raise InvalidToken(f'The introspection answer lacks "{name}".')
        for name in ("exp", "iat", "nbf"):
            if name in answer and not _is_number(answer[name]):
                raise InvalidToken(f'The introspection answer\'s "{name}" is not a number.')
        if not isinstance(answer.get("scope", ""), str) or not isinstance(answer.get("org_id", ""), str):
            raise InvalidToken("The introspection answer is malformed.")
        return self._accept(answer, required)


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS (three base64url parts), not yet trusted."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("The access token is not a well-formed JWT.")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise InvalidToken("The access token is not a well-formed JWT.")
    return header


def _check_token_shape(token: Any) -> None:
    if not isinstance(token, str) or not token:
        raise InvalidToken("No access token was given.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("The access token is too long.")
