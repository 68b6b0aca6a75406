from .api import Api, ApiClient, ApiOrgAccess, ApiScope, ClientGrant
from .audit import AuditEvent
from .client import Client, ClientKey, ClientSecret
from .organization import ACCOUNT_KINDS, Account, Organization
from .ratelimit import RateLimitCounter
from .session import ConsoleSession
from .signing_key import SigningKey
from .token import AccessToken, UsedAssertion
from .trusted_issuer import TrustedIssuer, TrustedIssuerClient, TrustedIssuerRule

__all__ = [
    "ACCOUNT_KINDS",
    "AccessToken",
    "Account",
    "Api",
    "ApiClient",
    "ApiOrgAccess",
    "ApiScope",
    "ClientGrant",
    "AuditEvent",
    "Client",
    "ClientKey",
    "ClientSecret",
    "ConsoleSession",
    "Organization",
    "RateLimitCounter",
    "SigningKey",
    "UsedAssertion",
    "TrustedIssuer",
    "TrustedIssuerClient",
    "TrustedIssuerRule",
]
