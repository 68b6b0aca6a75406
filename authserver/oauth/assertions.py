"""Verification of JWT bearer assertions (RFC 7523 §3, RFC 8725)."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .. import clock, token_store
from ..config import Settings
from ..crypto.jws import MalformedJWS, numeric_date, parse_compact, signature_valid
from ..crypto.keys import ASSERTION_ALGS, ParsedPublicKey, load_public_jwk
from .constants import JTI_MAX_LENGTH
from .errors import InvalidGrantError, InvalidRequestError


@dataclass(frozen=True)
class VerifiedAssertion:
    subject: str
    jti: str
    expires_at: int


class ClientKeyCache:
    """Parsed public keys per client, keyed on the client's keys_version so an added or deleted key
    is seen on the very next request without re-parsing keys on every one."""

    def __init__(self, max_clients: int = 10000):
        self._entries: dict[str, tuple[int, dict[str, ParsedPublicKey]]] = {}
        self._max = max_clients
        self._lock = threading.Lock()

    def keys_for(self, client_id: str, keys_version: int) -> dict[str, ParsedPublicKey]:
        entry = self._entries.get(client_id)
        if entry is not None and entry[0] == keys_version:
            return entry[1]
        keys = {kid: load_public_jwk(jwk) for kid, jwk in token_store.client_keys(client_id)}
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[client_id] = (keys_version, keys)
        return keys


def _select_key(header: dict, keys: dict[str, ParsedPublicKey]) -> ParsedPublicKey:
    kid = header.get("kid")
    if kid is not None:
        if not isinstance(kid, str) or kid not in keys:
            raise InvalidGrantError(description="The assertion's kid does not name a key registered for this client.")
        return keys[kid]
    if not keys:
        raise InvalidGrantError(description="This client has no registered public key to verify assertions with.")
    if len(keys) > 1:
        raise InvalidGrantError(description="The client has several keys: the assertion header must carry a kid.")
    return next(iter(keys.values()))


def _claim_error(message: str) -> InvalidGrantError:
    return InvalidGrantError(description=message)


def verify_assertion(assertion: str, client_id: str, keys: dict[str, ParsedPublicKey], settings: Settings) -> VerifiedAssertion:
    """RFC 7523 §3: signature by a registered key with a pinned asymmetric alg, then iss, sub, aud,
    exp (required, bounded), nbf and iat (with the clock skew), jti (required)."""
    if len(assertion.encode("utf-8", "surrogatepass")) > settings.assertion_max_bytes:
        raise InvalidRequestError(f"The assertion is larger than {settings.assertion_max_bytes} bytes.")
    try:
        jws = parse_compact(assertion)
    except MalformedJWS:
        raise InvalidGrantError(description="The assertion is not a well-formed signed JWT (JWS compact serialization).") from None
    header = jws.header
    alg = header.get("alg")
    if alg not in ASSERTION_ALGS:
        raise InvalidGrantError(
            description="The assertion's alg is not accepted: use an asymmetric algorithm (RS*, PS*, ES*, EdDSA); none and HS* are refused."
        )
    if "crit" in header:
        raise InvalidGrantError(description="The assertion carries critical header parameters (crit) this server does not understand.")
    key = _select_key(header, keys)  # jwk, jku, x5u and x5c are never consulted (RFC 8725 §3.10)
    if alg not in key.algs:
        raise InvalidGrantError(description=f"The assertion's alg does not fit the selected {key.key_type} key.")
    if not signature_valid(jws, alg, key.key):
        raise InvalidGrantError(description="The assertion's signature does not verify with the client's registered key.")

    claims = jws.claims
    for name in ("iss", "sub", "aud", "exp", "jti"):
        if name not in claims:
            raise _claim_error(f"The assertion lacks the required claim {name}.")
    if claims["iss"] != client_id:
        raise _claim_error("The assertion's iss must be the client_id of the authenticated client.")
    audience = claims["aud"]
    audiences = [audience] if isinstance(audience, str) else audience
    accepted = (settings.issuer, settings.token_endpoint)
    if not isinstance(audiences, list) or not any(isinstance(a, str) and a in accepted for a in audiences):
        raise _claim_error("The assertion's aud must be this server's issuer or token endpoint URL.")
    now = clock.now()
    skew = settings.clock_skew
    exp = numeric_date(claims["exp"])
    if exp is None:
        raise _claim_error("The assertion's exp must be a NumericDate.")
    if exp <= now - skew:
        raise _claim_error("The assertion has expired (exp).")
    if exp - now > settings.assertion_max_lifetime + skew:
        raise _claim_error(
            f"The assertion's exp is too far ahead: at most {settings.assertion_max_lifetime} seconds are accepted."
        )
    for name in ("nbf", "iat"):
        if name in claims:
            value = numeric_date(claims[name])
            if value is None:
                raise _claim_error(f"The assertion's {name} must be a NumericDate.")
            if value > now + skew:
                raise _claim_error("The assertion is not valid yet (nbf or iat in the future).")
    subject, jti = claims["sub"], claims["jti"]
    # Printable text only: a NUL or a lone UTF-16 surrogate (a "\ud800" escape) names nothing and
    # cannot even be stored or compared by the database.
    if not isinstance(subject, str) or not subject or len(subject) > 255 or not subject.isprintable():
        raise _claim_error("The assertion's sub must be a non-empty string.")
    if not isinstance(jti, str) or not jti or len(jti) > JTI_MAX_LENGTH or not jti.isprintable():
        raise _claim_error(f"The assertion's jti must be a string of 1 to {JTI_MAX_LENGTH} characters.")
    # Rounded up: a replay record must not expire before the assertion does (exp may be fractional).
    return VerifiedAssertion(subject=subject, jti=jti, expires_at=math.ceil(exp))
