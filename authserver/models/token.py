from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model


class AccessToken(Model):
    """Server-side record of an issued JWT access token (RFC 9068), for introspection and revocation."""

    __tablename__ = "access_tokens"
    __table_args__ = (
        Index("ix_access_tokens_expires_at", "expires_at"),
        Index("ix_access_tokens_client_id", "client_id"),
    )

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"))
    # No foreign key: deleting a secret must not touch the tokens it obtained.
    secret_id: Mapped[str | None] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    # The signing key that signed it (no foreign key: one more check per token insert, for keys that
    # are never deleted). NULL for tokens issued before the column existed.
    kid: Mapped[str | None] = mapped_column(String(64))


class UsedAssertion(Model):
    """An assertion `jti` already exchanged, kept until the assertion expires (RFC 7523 §3 item 7)."""

    __tablename__ = "used_assertions"
    __table_args__ = (
        PrimaryKeyConstraint("client_id", "jti", name="pk_used_assertions"),
        Index("ix_used_assertions_expires_at", "expires_at"),
    )

    client_id: Mapped[str] = mapped_column(String(32))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[int] = mapped_column(BigInteger)
