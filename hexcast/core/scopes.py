"""API key scopes: which key may call which tenant route.

A key has one scope. ``ingest`` posts visits only (the key shipped inside a mobile app);
``send`` sends messages and OTPs and looks up their status; ``marketer`` manages the catalog,
recipients, templates, campaigns and their stats; ``admin`` may do all of that and manage keys,
webhooks and tenant settings. A route declares the scope it needs with one of the typed
dependencies below, which also writes that scope into the route's OpenAPI security requirement
(``{"APIKeyHeader": ["marketer"]}``), so the served spec says what every route needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated

from fastapi import Security

from hexcast.core.errors import Forbidden
from hexcast.core.tenants import Tenant
from hexcast.core.web import TenantDep

__all__ = ["AdminTenant", "IngestTenant", "MarketerTenant", "Scope", "SendTenant", "allows",
           "check_scope", "requires"]


class Scope(StrEnum):
    INGEST = "ingest"
    SEND = "send"
    MARKETER = "marketer"
    ADMIN = "admin"


def allows(held: Scope, needed: Scope) -> bool:
    """Whether a key of scope ``held`` may call a route needing ``needed``: admin may do
    everything, every other scope only its own routes (scopes do not nest)."""
    return held is Scope.ADMIN or held is needed


def check_scope(tenant: Tenant, needed: Scope) -> Tenant:
    """``tenant`` when its key's scope allows ``needed``, else :class:`Forbidden` naming it."""
    held = Scope(tenant.scope)
    if not allows(held, needed):
        raise Forbidden(f"this route needs an API key of scope {needed.value!r} (or 'admin');"
                        f" this key's scope is {held.value!r}")
    return tenant


def requires(needed: Scope) -> Callable[[Tenant], Awaitable[Tenant]]:
    """A dependency: the tenant of a valid key whose scope allows ``needed``."""

    async def scoped(tenant: TenantDep) -> Tenant:
        return check_scope(tenant, needed)

    scoped.__name__ = f"requires_{needed.value}"
    return scoped


def _scoped(needed: Scope) -> object:
    return Security(requires(needed), scopes=[needed.value])


IngestTenant = Annotated[Tenant, _scoped(Scope.INGEST)]
"""Visits only."""
SendTenant = Annotated[Tenant, _scoped(Scope.SEND)]
"""Messages, OTPs and their status."""
MarketerTenant = Annotated[Tenant, _scoped(Scope.MARKETER)]
"""Catalog, recipients, templates, campaigns, stats."""
AdminTenant = Annotated[Tenant, _scoped(Scope.ADMIN)]
"""Keys, webhooks, tenant settings (and everything else)."""
