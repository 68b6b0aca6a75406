"""Reading back this server's own access tokens (RFC 9068)."""
from __future__ import annotations

from .. import clock
from ..services.common import current_settings
from ..services.signing_keys import token_grace
from ..crypto.jws import MalformedJWS, numeric_date, parse_compact, signature_valid
from .constants import ACCESS_TOKEN_JWT_TYP


class VerifiedClaims(dict):
    """The claims of a verified token, and the `kid` of the key that verified it (checked against the
    token's record: the record names the key that signed it, and a withdrawn key makes it inactive)."""

    __slots__ = ("kid",)

    def __init__(self, claims: dict, kid: str):
        super().__init__(claims)
        self.kid = kid


def decode_access_token(token: str, keyring, issuer: str) -> dict | None:
    """Claims of a token this server signed and that has not expired, or None. A resource server
    introspects the same token many times: the signature of a string already verified is not
    checked again (the same bytes verify the same way); expiry is checked on every call. The key ring
    drops what it remembers of a key within its refresh interval after the key is withdrawn."""
    if not isinstance(token, str) or len(token) > 8192:
        return None
    claims = keyring.verified_claims(token)
    if claims is not None:
        return claims if claims["exp"] > clock.now() else None
    claims = _verify_signed_claims(token, keyring, issuer)
    if claims is not None:
        keyring.remember_verified(token, claims)
    return claims


def _verify_signed_claims(token: str, keyring, issuer: str) -> dict | None:
    try:
        jws = parse_compact(token)
    except MalformedJWS:
        return None
    header = jws.header
    kid = header.get("kid")
    if header.get("typ") != ACCESS_TOKEN_JWT_TYP or not isinstance(kid, str) or len(kid) > 64 or not kid.isprintable():
        return None  # kid is looked up in the database, which refuses NUL and lone surrogates
    entry = keyring.verification_key(kid)
    if entry is None:
        return None  # unknown or withdrawn
    key, alg, retired_at = entry
    if header.get("alg") != alg or not signature_valid(jws, alg, key):
        return None
    claims = jws.claims
    # exp is checked against the server clock; iat is not checked at all: another host whose
    # clock runs a little behind the issuer's must not see a fresh token as "not yet valid".
    exp = numeric_date(claims.get("exp"))
    if claims.get("iss") != issuer or exp is None or exp <= clock.now():
        return None
    if retired_at is not None and exp > retired_at + token_grace(current_settings()):
        return None  # a retired key signed nothing that lives this long
    if not all(isinstance(claims.get(name), str) and claims[name].isprintable() for name in ("jti", "sub", "client_id")):
        return None
    return VerifiedClaims(claims, kid)
