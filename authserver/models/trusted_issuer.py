from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model


class TrustedIssuer(Model):
    """An external issuer whose signed JWTs an organization accepts as JWT bearer grant assertions
    (workload identity federation, SPEC §10): its keys come from `jwks_uri`, from OIDC discovery at
    the issuer URL (both key columns NULL), or from a pasted JWK Set."""

    __tablename__ = "trusted_issuers"
    __table_args__ = (UniqueConstraint("org_id", "issuer_url", name="uq_trusted_issuers_org_id_issuer_url"),)

    issuer_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    issuer_url: Mapped[str] = mapped_column(String(512))  # the assertions' iss, compared exactly
    audience: Mapped[str] = mapped_column(String(512))  # aud of its assertions must contain it
    jwks_uri: Mapped[str | None] = mapped_column(String(2048))
    jwks: Mapped[str | None] = mapped_column(Text)  # a pasted JWK Set (public keys only), JSON
    # Bumped in SQL on every change to the issuer, its rules or its clients: workers key their
    # parsed copy on it, so a change is seen on the very next request.
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class TrustedIssuerRule(Model):
    """Maps an issuer's assertions to one account of its organization when every claim condition
    matches; rules are tried in `position` order and the first match wins."""

    __tablename__ = "trusted_issuer_rules"
    __table_args__ = (Index("ix_trusted_issuer_rules_issuer_id", "issuer_id"),)

    rule_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("trusted_issuers.issuer_id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"))
    claims: Mapped[str] = mapped_column(Text)  # JSON object: claim name -> the exact value it must have
    scope: Mapped[str | None] = mapped_column(Text)  # at most these scopes (NULL: the client's grant decides)
    resource: Mapped[str | None] = mapped_column(String(255))  # only this API (NULL: any the client may use)
    created_at: Mapped[int] = mapped_column(BigInteger)


class TrustedIssuerClient(Model):
    """A client allowed to present the issuer's assertions at the token endpoint."""

    __tablename__ = "trusted_issuer_clients"
    __table_args__ = (Index("ix_trusted_issuer_clients_client_id", "client_id"),)

    issuer_id: Mapped[str] = mapped_column(ForeignKey("trusted_issuers.issuer_id", ondelete="CASCADE"),
                                           primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
