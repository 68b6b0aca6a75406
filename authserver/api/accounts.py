"""/accounts: the organization's accounts, the subjects of its access tokens."""
from __future__ import annotations

from typing import Literal

from flask import url_for
from pydantic import Field

from ..models import ACCOUNT_KINDS, Account
from ..services import accounts as account_service
from ..services.accounts import PASSWORD_MIN
from .auth import CallContext
from .routing import Reply, operation
from .schemas import QueryParameters, RequestBody, ResponseBody, Timestamp, optional, timestamp

TAG = "Accounts"
AccountKind = Literal[ACCOUNT_KINDS]  # type: ignore[valid-type]


class AccountCreate(RequestBody):
    name: str
    kind: AccountKind = Field(description="`service`: a machine identity that cannot sign in; `user`: a person.")
    email: str = optional("Users only, required for them; unique across the server.")
    password: str = optional(f"Users only, optional, at least {PASSWORD_MIN} characters; lets the user sign in to "
                             "the console if also an admin. Never returned, never logged.", write_only=True)
    admin: bool = optional("Users only: an administrator of the organization.")


class AccountUpdate(RequestBody):
    disabled: bool = Field(description="true disables the account: it gets no new tokens and its live tokens become "
                                       "inactive. false enables it again: it may get new tokens, and the tokens "
                                       "issued before it was disabled stay revoked.")


class AccountOut(ResponseBody):
    account_id: str
    name: str
    kind: AccountKind
    email: str | None
    admin: bool
    disabled: bool
    disabled_at: Timestamp | None
    created_at: Timestamp

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        return cls(account_id=account.account_id, name=account.name, kind=account.kind, email=account.email,
                   admin=account.is_admin, disabled=account.disabled_at is not None,
                   disabled_at=timestamp(account.disabled_at), created_at=timestamp(account.created_at))


class AccountList(ResponseBody):
    items: list[AccountOut]


class AccountFilter(QueryParameters):
    kind: AccountKind | None = Field(default=None, description="Only accounts of this kind.")


@operation("GET", "/accounts", summary="List the organization's accounts", tag=TAG, query=AccountFilter,
           responses={200: AccountList})
def list_accounts(ctx: CallContext, query: AccountFilter):
    return AccountList(items=[AccountOut.of(a) for a in account_service.list_accounts(ctx.org_id, kind=query.kind)])


@operation("POST", "/accounts", summary="Create a service account or a user", tag=TAG, body=AccountCreate,
           responses={201: AccountOut}, errors=(409,), response_headers={201: {"Location": "The new account's URL."}})
def create_account(ctx: CallContext, body: AccountCreate):
    account = account_service.create_account(
        ctx.org_id, body.name, body.kind, email=body.email, password=body.password, is_admin=bool(body.admin),
        actor=ctx.actor,
    )
    return Reply(
        AccountOut.of(account), headers={"Location": url_for("api_v1.get_account", account_id=account.account_id)}
    )


@operation("GET", "/accounts/{account_id}", summary="Show an account", tag=TAG, responses={200: AccountOut})
def get_account(ctx: CallContext, account_id: str):
    return AccountOut.of(account_service.get_account(account_id, ctx.org_id))


@operation("PATCH", "/accounts/{account_id}", summary="Disable or enable an account", tag=TAG, body=AccountUpdate,
           responses={200: AccountOut}, errors=(409,),
           description="The organization's last active admin cannot be disabled (409): make another admin first.")
def update_account(ctx: CallContext, account_id: str, body: AccountUpdate):
    change = account_service.disable_account if body.disabled else account_service.enable_account
    return AccountOut.of(change(account_id, ctx.org_id, actor=ctx.actor))
