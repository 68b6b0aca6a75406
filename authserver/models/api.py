from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, PrimaryKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model


class Api(Model):
    """A resource server that access tokens are issued for (RFC 8707 §2: its identifier is the `resource`
    and the tokens' `aud`). Owned by an organization, or by the platform when org_id is NULL."""

    __tablename__ = "apis"
    __table_args__ = (
        UniqueConstraint("identifier", name="uq_apis_identifier"),
        Index("ix_apis_org_id", "org_id"),
    )

    api_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    identifier: Mapped[str] = mapped_column(String(255))
    # Platform APIs only: usable by every organization's clients, not just those it was opened to.
    open_to_all: Mapped[bool] = mapped_column(Boolean, default=False)
    # "management" or "default" for the APIs the server makes itself; NULL for everything else.
    builtin: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ApiScope(Model):
    """A scope an API defines (RFC 6749 §3.3 scope-token)."""

    __tablename__ = "api_scopes"
    __table_args__ = (PrimaryKeyConstraint("api_id", "name", name="pk_api_scopes"),)

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.api_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")


class ApiOrgAccess(Model):
    """An organization a platform API was opened to."""

    __tablename__ = "api_org_access"
    __table_args__ = (PrimaryKeyConstraint("api_id", "org_id", name="pk_api_org_access"),)

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.api_id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiClient(Model):
    """The API's own client: it introspects the tokens issued for the API."""

    __tablename__ = "api_clients"
    __table_args__ = (
        PrimaryKeyConstraint("api_id", "client_id", name="pk_api_clients"),
        Index("ix_api_clients_client_id", "client_id"),
    )

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.api_id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)


class ClientGrant(Model):
    """API access: the scopes of one API a client may ask for. At most one grant per client is its default."""

    __tablename__ = "client_grants"
    __table_args__ = (
        PrimaryKeyConstraint("client_id", "api_id", name="pk_client_grants"),
        Index("ix_client_grants_api_id", "api_id"),
    )

    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    api_id: Mapped[str] = mapped_column(ForeignKey("apis.api_id", ondelete="CASCADE"))
    # Space-delimited, sorted; always a subset of the API's scopes (kept so by the services).
    scope: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
