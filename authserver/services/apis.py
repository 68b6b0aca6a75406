"""APIs (resource servers), the scopes they define, who may use them, and clients' API access (grants).

A token names exactly one API in `aud` (RFC 8707 §2, RFC 9068 §3). A client may ask for an API only
where it holds a grant, and only for granted scopes; a grant's scopes are always scopes the API
defines (removing a scope from an API removes it from every grant in the same transaction).
Whatever changes what a client may get bumps its access_version in SQL, so every worker's cache of
client access is refreshed on that client's very next request."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select, union, update
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import AccessToken, Api, ApiClient, ApiOrgAccess, ApiScope, Client, ClientGrant
from .audit import record_event
from .clients import get_client
from .common import (
    CLI_ACTOR,
    SCOPE_TOKEN_MAX,
    Actor,
    clean_name,
    clean_scope_token,
    current_settings,
    is_identifier,
    new_id,
    transactional,
)
from .organizations import get_organization

IDENTIFIER_MAX = 255
SCOPE_DESCRIPTION_MAX = 500
MAX_SCOPES_PER_API = 100
MAX_APIS_PER_ORG = 100
BUILTIN_MANAGEMENT = "management"
BUILTIN_DEFAULT = "default"
MANAGEMENT_PATH = "/api/v1"
MANAGE_SCOPE = "manage"
# RFC 3986 §3.1 scheme, then the characters a URI may hold (§2), nothing else: no space, no control
# character, no fragment (RFC 8707 §2).
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]+")
_HIERARCHICAL = re.compile(r"^(?:https?|wss?)://[^/?#\s]+")

_UNSET = object()


def management_identifier() -> str:
    return current_settings().issuer + MANAGEMENT_PATH


# --- input rules ------------------------------------------------------------------------------

def clean_identifier(value: object) -> str:
    """An API identifier: an absolute URI without a fragment (RFC 8707 §2), compared exactly."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("The identifier is required: an absolute URI such as https://api.example.com/orders.",
                           field="identifier")
    if len(value) > IDENTIFIER_MAX:
        raise InvalidInput(f"The identifier must be at most {IDENTIFIER_MAX} characters.", field="identifier")
    if "#" in value:
        raise InvalidInput("The identifier must not contain a fragment (#...): RFC 8707 section 2.", field="identifier")
    if not _URI.fullmatch(value):
        raise InvalidInput("The identifier must be an absolute URI (scheme:..., e.g. https://api.example.com/orders) "
                           "without spaces or control characters.", field="identifier")
    if value.split(":", 1)[0].lower() in ("http", "https", "ws", "wss") and not _HIERARCHICAL.match(value):
        raise InvalidInput("An http(s) identifier must name a host: https://host/path.", field="identifier")
    return value


def is_valid_identifier(value: object) -> bool:
    try:
        clean_identifier(value)
    except InvalidInput:
        return False
    return True


def clean_scope_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("A scope description must be text.", field="scopes")
    value = value.strip()
    if len(value) > SCOPE_DESCRIPTION_MAX:
        raise InvalidInput(f"A scope description must be at most {SCOPE_DESCRIPTION_MAX} characters.", field="scopes")
    if not value.isprintable():
        raise InvalidInput("A scope description must be one line without control characters.", field="scopes")
    return value


def clean_scope_definitions(scopes: object) -> dict[str, str]:
    """Scope definitions as {name: description}. Accepts a list of names, of "name=description" texts,
    of (name, description) pairs or of {"name", "description"} objects, or a dict."""
    if scopes is None:
        return {}
    if isinstance(scopes, dict):
        items = list(scopes.items())
    elif isinstance(scopes, (list, tuple)):
        items = []
        for entry in scopes:
            if isinstance(entry, str):
                name, _, description = entry.partition("=")
                items.append((name, description))
            elif isinstance(entry, (list, tuple)) and len(entry) == 2:
                items.append((entry[0], entry[1]))
            elif isinstance(entry, dict) and set(entry) <= {"name", "description"} and "name" in entry:
                items.append((entry["name"], entry.get("description")))
            else:
                raise InvalidInput("Each scope is a name, or an object with name and description.", field="scopes")
    else:
        raise InvalidInput("Scopes must be a list.", field="scopes")
    result: dict[str, str] = {}
    for name, description in items:
        name = clean_scope_token(name, field="scopes")
        if name in result:
            raise InvalidInput(f"The scope {name!r} is listed twice.", field="scopes")
        result[name] = clean_scope_description(description)
    if len(result) > MAX_SCOPES_PER_API:
        raise InvalidInput(f"An API may define at most {MAX_SCOPES_PER_API} scopes.", field="scopes")
    return result


# --- reading ----------------------------------------------------------------------------------

def _org_may_use(api: Api, org_id: str) -> bool:
    """Whether an organization's clients may hold grants for an API."""
    if api.org_id is not None:
        return api.org_id == org_id
    if api.open_to_all:
        return True
    return db.session.get(ApiOrgAccess, (api.api_id, org_id)) is not None


def get_api(api_id: object, org_id: str | None = None) -> Api:
    """An API by id. An organization sees its own APIs and the platform APIs open to it."""
    api = db.session.get(Api, api_id) if is_identifier(api_id) else None
    if api is None or (org_id is not None and not _org_may_use(api, org_id)):
        raise NotFound("API not found.")
    return api


def get_owned_api(api_id: object, org_id: str | None = None) -> Api:
    """An API the caller may change: an organization its own APIs, the operator (org_id None) every API."""
    api = get_api(api_id, org_id)
    if org_id is not None and api.org_id != org_id:
        raise Forbidden("Platform APIs are managed by the operator through the command line.")
    return api


def find_api(reference: object, org_id: str | None = None) -> Api:
    """An API by its api_id or its identifier."""
    if not is_identifier(reference, IDENTIFIER_MAX):
        raise NotFound("API not found.")
    api = db.session.get(Api, reference)
    if api is None:
        api = db.session.scalar(select(Api).where(Api.identifier == reference))
    if api is None or (org_id is not None and not _org_may_use(api, org_id)):
        raise NotFound("API not found.")
    return api


def list_apis(org_id: str | None = None) -> list[Api]:
    """The operator: every API. An organization: its own APIs and the platform APIs open to it."""
    query = select(Api)
    if org_id is not None:
        opened = select(ApiOrgAccess.api_id).where(ApiOrgAccess.org_id == org_id)
        query = query.where(or_(Api.org_id == org_id,
                                Api.org_id.is_(None) & (Api.open_to_all | Api.api_id.in_(opened))))
    # Platform APIs first, then by creation.
    return list(db.session.scalars(query.order_by(Api.org_id.is_not(None), Api.created_at, Api.api_id)))


def open_platform_scopes() -> list[str]:
    """RFC 8414 scopes_supported: the scopes of the platform APIs every organization may use (an
    organization's own APIs and their scopes are not published)."""
    query = (select(ApiScope.name).join(Api, Api.api_id == ApiScope.api_id)
             .where(Api.org_id.is_(None), Api.open_to_all).distinct().order_by(ApiScope.name))
    return list(db.session.scalars(query))


def scopes_of(api: Api) -> list[ApiScope]:
    return list(db.session.scalars(select(ApiScope).where(ApiScope.api_id == api.api_id).order_by(ApiScope.name)))


def opened_to(api: Api) -> list[str]:
    return list(db.session.scalars(select(ApiOrgAccess.org_id).where(ApiOrgAccess.api_id == api.api_id)
                                   .order_by(ApiOrgAccess.org_id)))


def bound_clients(api: Api) -> list[str]:
    return list(db.session.scalars(select(ApiClient.client_id).where(ApiClient.api_id == api.api_id)
                                   .order_by(ApiClient.client_id)))


def grants_of_api(api: Api) -> list[ClientGrant]:
    return list(db.session.scalars(select(ClientGrant).where(ClientGrant.api_id == api.api_id)
                                   .order_by(ClientGrant.client_id)))


def _bump_access(*, api_id: str | None = None, client_ids: list[str] | None = None) -> None:
    """Invalidate the cached access of the clients concerned, in SQL (concurrent bumps never get lost)."""
    statement = update(Client).values(access_version=Client.access_version + 1)
    if client_ids is not None:
        statement = statement.where(Client.client_id.in_(client_ids))
    else:
        holders = union(select(ClientGrant.client_id).where(ClientGrant.api_id == api_id),
                        select(ApiClient.client_id).where(ApiClient.api_id == api_id))
        statement = statement.where(Client.client_id.in_(holders))
    db.session.execute(statement.execution_options(synchronize_session=False))


# --- APIs -------------------------------------------------------------------------------------

def _reserved_for_platform(identifier: str) -> bool:
    issuer = current_settings().issuer
    return identifier == issuer or identifier.startswith(issuer + "/")


def _check_identifier_free(identifier: str) -> None:
    if db.session.scalar(select(Api.api_id).where(Api.identifier == identifier)) is not None:
        raise Conflict("An API with this identifier already exists: identifiers are unique on this server.",
                       field="identifier")


@transactional
def create_api(name: object, identifier: object, *, org_id: str | None = None, scopes: object = None,
               open_to_all: bool = False, builtin: str | None = None, actor: Actor = CLI_ACTOR) -> Api:
    """An organization's API (org_id given) or a platform API (org_id None: the operator, CLI only)."""
    name = clean_name(name, "API name")
    identifier = clean_identifier(identifier)
    definitions = clean_scope_definitions(scopes)
    if org_id is not None:
        get_organization(org_id)
        if open_to_all:
            raise InvalidInput("Only platform APIs can be opened to other organizations.", field="open_to_all")
        if _reserved_for_platform(identifier):
            raise InvalidInput("Identifiers below this server's issuer URL are reserved for platform APIs.",
                               field="identifier")
        count = db.session.scalar(select(func.count()).select_from(Api).where(Api.org_id == org_id))
        if (count or 0) >= MAX_APIS_PER_ORG:
            raise Conflict(f"An organization may have at most {MAX_APIS_PER_ORG} APIs; delete an unused one first.")
    _check_identifier_free(identifier)
    now = clock.now()
    api = Api(api_id=new_id("api_"), org_id=org_id, name=name, identifier=identifier,
              open_to_all=bool(open_to_all) and org_id is None, builtin=builtin, created_at=now, updated_at=now)
    db.session.add(api)
    for scope_name, description in definitions.items():
        db.session.add(ApiScope(api_id=api.api_id, name=scope_name, description=description))
    try:
        db.session.flush()
    except IntegrityError:  # the same identifier created at the same instant by another request
        db.session.rollback()
        raise Conflict("An API with this identifier already exists: identifiers are unique on this server.",
                       field="identifier") from None
    record_event(actor, org_id, "api.created", "api", api.api_id, name=name, identifier=identifier,
                 scopes=sorted(definitions), platform=org_id is None, open_to_all=api.open_to_all)
    return api


def _remove_scopes_from_grants(api: Api, removed: set[str]) -> None:
    if not removed:
        return
    for grant in grants_of_api(api):
        kept = [s for s in grant.scope.split() if s not in removed]
        if kept != grant.scope.split():
            grant.scope = " ".join(kept)
            grant.updated_at = clock.now()


@transactional
def update_api(api_id: object, org_id: str | None = None, *, name: object = _UNSET, scopes: object = _UNSET,
               open_to_all: object = _UNSET,
               actor: Actor = CLI_ACTOR) -> Api:
    """Rename an API, replace its scopes (with their descriptions), or (platform APIs) open it to every
    organization. The identifier never changes: tokens and resource servers rely on it."""
    api = get_owned_api(api_id, org_id)
    changed = []
    if name is not _UNSET:
        api.name = clean_name(name, "API name")
        changed.append("name")
    if scopes is not _UNSET:
        definitions = clean_scope_definitions(scopes)
        if api.builtin == BUILTIN_MANAGEMENT and MANAGE_SCOPE not in definitions:
            raise InvalidInput("The management API's manage scope cannot be removed.", field="scopes")
        current = {s.name: s for s in scopes_of(api)}
        removed = set(current) - set(definitions)
        for scope_name in removed:
            db.session.delete(current[scope_name])
        for scope_name, description in definitions.items():
            if scope_name in current:
                current[scope_name].description = description
            else:
                db.session.add(ApiScope(api_id=api.api_id, name=scope_name, description=description))
        _remove_scopes_from_grants(api, removed)
        changed.append("scopes")
        if removed:
            _bump_access(api_id=api.api_id)
    if open_to_all is not _UNSET:
        if api.org_id is not None:
            raise InvalidInput("Only platform APIs can be opened to other organizations.", field="open_to_all")
        api.open_to_all = bool(open_to_all)
        changed.append("open_to_all")
        _bump_access(api_id=api.api_id)
    if changed:
        api.updated_at = clock.now()
        record_event(actor, api.org_id, "api.updated", "api", api.api_id, fields=changed,
                     **({"scopes": sorted(s.name for s in scopes_of(api))} if "scopes" in changed else {}))
    return api


@transactional
def add_scope(api_id: object, name: object, description: object = None, org_id: str | None = None,
              actor: Actor = CLI_ACTOR) -> ApiScope:
    api = get_owned_api(api_id, org_id)
    scope_name = clean_scope_token(name, field="name")
    description = clean_scope_description(description)
    if db.session.get(ApiScope, (api.api_id, scope_name)) is not None:
        raise Conflict(f"The API already defines the scope {scope_name!r}.", field="name")
    if len(scopes_of(api)) >= MAX_SCOPES_PER_API:
        raise Conflict(f"An API may define at most {MAX_SCOPES_PER_API} scopes.")
    row = ApiScope(api_id=api.api_id, name=scope_name, description=description)
    db.session.add(row)
    api.updated_at = clock.now()
    record_event(actor, api.org_id, "api.scope_added", "api", api.api_id, scope=scope_name)
    return row


@transactional
def remove_scope(api_id: object, name: object, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    """The scope goes from the API and from every grant; tokens already issued keep it until they expire."""
    api = get_owned_api(api_id, org_id)
    row = db.session.get(ApiScope, (api.api_id, name)) if is_identifier(name, SCOPE_TOKEN_MAX) else None
    if row is None:
        raise NotFound("The API defines no such scope.")
    if api.builtin == BUILTIN_MANAGEMENT and row.name == MANAGE_SCOPE:
        raise InvalidInput("The management API's manage scope cannot be removed.", field="name")
    db.session.delete(row)
    _remove_scopes_from_grants(api, {row.name})
    _bump_access(api_id=api.api_id)
    api.updated_at = clock.now()
    record_event(actor, api.org_id, "api.scope_removed", "api", api.api_id, scope=row.name)


@dataclass(frozen=True)
class DeletionImpact:
    """What deleting an API takes with it: the grants of these clients, and these live tokens."""

    client_ids: list[str]
    live_tokens: int


def deletion_impact(api_id: object, org_id: str | None = None) -> DeletionImpact:
    api = get_owned_api(api_id, org_id)
    live = db.session.scalar(select(func.count()).select_from(AccessToken).where(
        AccessToken.audience == api.identifier, AccessToken.revoked_at.is_(None), AccessToken.expires_at > clock.now()))
    return DeletionImpact([g.client_id for g in grants_of_api(api)], live or 0)


@transactional
def delete_api(api_id: object, org_id: str | None = None, *, force: bool = False,
               actor: Actor = CLI_ACTOR) -> DeletionImpact:
    """Delete an API. Refused (409) while clients hold grants for it, unless forced: then the grants go
    too. Its live tokens are revoked either way, so a later API that takes the same identifier never
    accepts them."""
    api = get_owned_api(api_id, org_id)
    if api.builtin == BUILTIN_MANAGEMENT:
        raise Forbidden("The management API cannot be deleted.")
    impact = deletion_impact(api.api_id, org_id)
    if impact.client_ids and not force:
        raise Conflict(f"{len(impact.client_ids)} client(s) hold access to this API; remove their access first, "
                       "or delete with force to remove it with the API.")
    _bump_access(api_id=api.api_id)
    db.session.execute(update(AccessToken).where(AccessToken.audience == api.identifier,
                                                 AccessToken.revoked_at.is_(None))
                       .values(revoked_at=clock.now()).execution_options(synchronize_session=False))
    for model in (ClientGrant, ApiClient, ApiOrgAccess, ApiScope):
        db.session.execute(delete(model).where(model.api_id == api.api_id).execution_options(synchronize_session=False))
    record_event(actor, api.org_id, "api.deleted", "api", api.api_id, name=api.name, identifier=api.identifier,
                 removed_grants=impact.client_ids, revoked_tokens=impact.live_tokens)
    db.session.delete(api)
    return impact


@transactional
def open_api(api_id: object, org_id: str, actor: Actor = CLI_ACTOR) -> Api:
    """The operator opens a platform API to one organization."""
    api = get_api(api_id)
    if api.org_id is not None:
        raise InvalidInput("Only platform APIs can be opened to other organizations.")
    get_organization(org_id)
    if db.session.get(ApiOrgAccess, (api.api_id, org_id)) is None:
        db.session.add(ApiOrgAccess(api_id=api.api_id, org_id=org_id, created_at=clock.now()))
        _bump_access(api_id=api.api_id)
        record_event(actor, None, "api.opened", "api", api.api_id, organization=org_id)
    return api


@transactional
def close_api(api_id: object, org_id: str, actor: Actor = CLI_ACTOR) -> Api:
    """The operator closes a platform API to one organization: its clients' grants stop working at once."""
    api = get_api(api_id)
    row = db.session.get(ApiOrgAccess, (api.api_id, org_id)) if is_identifier(org_id) else None
    if row is None:
        raise NotFound("The API was not opened to this organization.")
    db.session.delete(row)
    _bump_access(api_id=api.api_id)
    record_event(actor, None, "api.closed", "api", api.api_id, organization=org_id)
    return api


@transactional
def bind_client(api_id: object, client_id: object, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> ApiClient:
    """Make a client the API's own: it then introspects the tokens issued for the API."""
    api = get_owned_api(api_id, org_id)
    client = get_client(client_id, org_id)
    if api.org_id is not None and client.org_id != api.org_id:
        raise InvalidInput("An organization's API can only be bound to a client of that organization.",
                           field="client_id")
    row = db.session.get(ApiClient, (api.api_id, client.client_id))
    if row is None:
        row = ApiClient(api_id=api.api_id, client_id=client.client_id, created_at=clock.now())
        db.session.add(row)
        _bump_access(client_ids=[client.client_id])
        record_event(actor, api.org_id, "api.client_bound", "api", api.api_id, client_id=client.client_id)
    return row


@transactional
def unbind_client(api_id: object, client_id: object, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    api = get_owned_api(api_id, org_id)
    row = db.session.get(ApiClient, (api.api_id, client_id)) if is_identifier(client_id) else None
    if row is None:
        raise NotFound("This client is not bound to the API.")
    db.session.delete(row)
    _bump_access(client_ids=[row.client_id])
    record_event(actor, api.org_id, "api.client_unbound", "api", api.api_id, client_id=row.client_id)


# --- API access (grants) ------------------------------------------------------------------------

def _grant_scope(api: Api, scope: object) -> str:
    from .common import parse_scope_list

    requested = parse_scope_list(scope)
    defined = {s.name for s in scopes_of(api)}
    unknown = sorted(set(requested) - defined)
    if unknown:
        raise InvalidInput(f"The API does not define the scope(s): {' '.join(unknown)}.", field="scope")
    return " ".join(sorted(set(requested)))


@transactional
def grant_client(client_id: object, api_reference: object, scope: object = None, *, default: bool | None = None,
                 org_id: str | None = None, actor: Actor = CLI_ACTOR) -> ClientGrant:
    """Give a client access to an API with these scopes (replacing an earlier grant's). default=True makes
    it the client's default API; None keeps the current default, or makes this the default when the
    client has none yet."""
    client = get_client(client_id, org_id)
    api = find_api(api_reference, org_id)
    if not _org_may_use(api, client.org_id):
        raise InvalidInput("The client's organization cannot use this API.", field="api")
    scope_text = _grant_scope(api, scope)
    now = clock.now()
    grants = {
        g.api_id: g for g in db.session.scalars(select(ClientGrant).where(ClientGrant.client_id == client.client_id))
    }
    existing = grants.get(api.api_id)
    created = existing is None
    if existing is None:
        grant = ClientGrant(client_id=client.client_id, api_id=api.api_id, scope=scope_text, is_default=False,
                            created_at=now, updated_at=now)
        db.session.add(grant)
    else:
        grant = existing
        grant.scope = scope_text
        grant.updated_at = now
    has_other_default = any(g.is_default for g in grants.values() if g.api_id != api.api_id)
    if default is True:
        for other in grants.values():
            if other.api_id != api.api_id and other.is_default:
                other.is_default = False
        grant.is_default = True
    elif default is False:
        grant.is_default = False
    elif created and not has_other_default:
        grant.is_default = True
    try:
        db.session.flush()
    except IntegrityError:  # the same grant created at the same instant by another request
        db.session.rollback()
        raise Conflict("This client's access to the API changed meanwhile; try again.") from None
    _bump_access(client_ids=[client.client_id])
    record_event(actor, client.org_id, "client.granted" if created else "client.grant_updated", "client",
                 client.client_id, api_id=api.api_id, identifier=api.identifier, scope=scope_text,
                 default=grant.is_default)
    return grant


@transactional
def ungrant_client(client_id: object, api_reference: object, org_id: str | None = None,
                   actor: Actor = CLI_ACTOR) -> None:
    client = get_client(client_id, org_id)
    api = find_api(api_reference, org_id)
    grant = db.session.get(ClientGrant, (client.client_id, api.api_id))
    if grant is None:
        raise NotFound("This client has no access to the API.")
    db.session.delete(grant)
    _bump_access(client_ids=[client.client_id])
    record_event(actor, client.org_id, "client.ungranted", "client", client.client_id, api_id=api.api_id,
                 identifier=api.identifier)


def list_grants(client_id: object, org_id: str | None = None) -> list[tuple[ClientGrant, Api]]:
    client = get_client(client_id, org_id)
    rows = db.session.execute(select(ClientGrant, Api).join(Api, Api.api_id == ClientGrant.api_id)
                              .where(ClientGrant.client_id == client.client_id)
                              .order_by(ClientGrant.is_default.desc(), Api.identifier)).all()
    return [(grant, api) for grant, api in rows]


# --- the platform's own APIs --------------------------------------------------------------------

def builtin_api(kind: str) -> Api | None:
    return db.session.scalar(select(Api).where(Api.builtin == kind))


@transactional
def ensure_platform_apis() -> dict[str, Any]:
    """The management API follows the configured issuer; the `default` API exists (made by the
    migration, or here on a database that lost it)."""
    settings = current_settings()
    identifier = management_identifier()
    now = clock.now()
    management = builtin_api(BUILTIN_MANAGEMENT)
    if management is None:
        management = Api(api_id=new_id("api_"), org_id=None, name="Management API", identifier=identifier,
                         open_to_all=True, builtin=BUILTIN_MANAGEMENT, created_at=now, updated_at=now)
        db.session.add(management)
        db.session.add(ApiScope(api_id=management.api_id, name=MANAGE_SCOPE,
                                description="Manage the organization through the management API."))
    elif management.identifier != identifier:
        _check_identifier_free(identifier)
        management.identifier = identifier
        management.updated_at = now
        _bump_access(api_id=management.api_id)
    default = builtin_api(BUILTIN_DEFAULT)
    if default is None and db.session.scalar(select(Api.api_id).where(Api.identifier == settings.audience)) is None:
        default = Api(api_id=new_id("api_"), org_id=None, name="default", identifier=settings.audience,
                      open_to_all=True, builtin=BUILTIN_DEFAULT, created_at=now, updated_at=now)
        db.session.add(default)
        for name in sorted(set(settings.scopes_supported) - {MANAGE_SCOPE}):
            db.session.add(ApiScope(api_id=default.api_id, name=name, description=""))
    return {"management_api": management.api_id, "default_api": default.api_id if default is not None else None}


# --- reads for the doors ------------------------------------------------------------------------

def org_grants_of_api(api: Api, org_id: str) -> list[ClientGrant]:
    """The grants one organization's clients hold for an API (a platform API's grants span organizations)."""
    return list(db.session.scalars(select(ClientGrant).join(Client, Client.client_id == ClientGrant.client_id)
                                   .where(ClientGrant.api_id == api.api_id, Client.org_id == org_id)
                                   .order_by(ClientGrant.client_id)))
