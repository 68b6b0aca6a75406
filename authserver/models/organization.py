from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model

ACCOUNT_KINDS = ("service", "user")


class Organization(Model):
    __tablename__ = "organizations"

    org_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Account(Model):
    """The subject (`sub`) of access tokens: a service identity or a person. An email is unique within its
    organization only: another organization can neither learn of it nor be blocked from using it."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index("ix_accounts_org_id", "org_id"),
        Index("ix_accounts_email", "email"),  # console sign-in finds every organization's account by email
        UniqueConstraint("org_id", "email", name="uq_accounts_org_id_email"),
    )

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
