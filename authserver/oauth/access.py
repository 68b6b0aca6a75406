"""What a client may get (its API access) and which APIs it introspects for, cached per worker.

Keyed on the client's access_version, which every token request reads with the secret: any change
to grants, API scopes, platform API access or bindings bumps it, so the very next request reloads."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from .. import token_store


@dataclass(frozen=True)
class ApiAccess:
    """One API a client may ask tokens for, and the scopes it may ask for there."""

    identifier: str
    scopes: frozenset[str]
    scope: str  # the granted scopes, space-delimited and sorted: the default when none are requested
    is_default: bool


@dataclass(frozen=True)
class IntrospectedApi:
    identifier: str
    org_id: str | None  # None: a platform API, whose tokens belong to any organization


@dataclass(frozen=True)
class ClientAccess:
    apis: dict[str, ApiAccess]
    default: ApiAccess | None
    introspects: tuple[IntrospectedApi, ...]


def load_client_access(client_id: str, org_id: str) -> ClientAccess:
    apis: dict[str, ApiAccess] = {}
    default = None
    for identifier, scope, is_default, api_org, open_to_all, opened_to in token_store.client_grants(client_id, org_id):
        # An organization's API serves only that organization's clients; a platform API
        # the organizations it is open to. A grant that no longer fits is ignored, not trusted.
        usable = api_org == org_id if api_org is not None else bool(open_to_all) or opened_to is not None
        if not usable:
            continue
        names = tuple(sorted(set((scope or "").split())))
        access = ApiAccess(identifier, frozenset(names), " ".join(names), bool(is_default))
        apis[identifier] = access
        if access.is_default and default is None:
            default = access
    introspects = tuple(IntrospectedApi(identifier, api_org)
                        for identifier, api_org in token_store.bound_apis(client_id))
    return ClientAccess(apis, default, introspects)


class ClientAccessCache:
    def __init__(self, max_clients: int = 10000):
        self._entries: dict[str, tuple[int, ClientAccess]] = {}
        self._max = max_clients
        self._lock = threading.Lock()

    def access_for(self, client_id: str, org_id: str, access_version: int) -> ClientAccess:
        entry = self._entries.get(client_id)
        if entry is not None and entry[0] == access_version:
            return entry[1]
        access = load_client_access(client_id, org_id)
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[client_id] = (access_version, access)
        return access
