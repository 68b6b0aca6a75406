"""Schema building blocks shared by the resources of /api/v1."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, overload

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


class RequestBody(BaseModel):
    """A JSON request body: exact types (no "1" for 1 or "yes" for true), unknown members refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


class QueryParameters(BaseModel):
    """Query parameters arrive as text, so they are converted; unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore")


class ResponseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


# An optional member that, when present, must hold a value of its type (null is refused):
# PATCH tells "leave unchanged" (absent) apart from "set" (present).
def optional(description: str, *, write_only: bool = False) -> Any:
    def schema_extra(schema: dict) -> None:
        schema.pop("default", None)
        if write_only:
            schema["writeOnly"] = True

    return Field(default=None, description=description, json_schema_extra=schema_extra)


Timestamp = Annotated[datetime, Field(description="RFC 3339 date-time, UTC")]


@overload
def timestamp(value: int) -> datetime: ...
@overload
def timestamp(value: None) -> None: ...
@overload
def timestamp(value: int | None) -> datetime | None: ...
def timestamp(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


class FieldError(ResponseBody):
    field: str = Field(description="The offending member, dotted for nested ones ('' for the whole body).")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error of this API."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URI naming the kind of problem; `about:blank` for plain HTTP errors.")
    title: str
    status: int
    detail: str | SkipJsonSchema[None] = None
    field: str | SkipJsonSchema[None] = Field(
        default=None, description="The first offending field, when one is to blame."
    )
    errors: list[FieldError] | SkipJsonSchema[None] = None
