"""The operator audit log: who did what, on what, when and why (migration 0026).

Every operator action outside a tenant's own API is recorded in the same transaction as its
effect. Provider route actions have their own table (``route_actions``); :func:`recent` reads
both, newest first. Plain SQL, keyword-only arguments.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from hexcast.core.db import Conn
from hexcast.core.pgtext import PG_TEXT

__all__ = ["Audited", "OperatorAction", "cli_actor", "recent", "record"]


class Audited(BaseModel):
    """The body of an operator action: why, and who (an operator's name or tool)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500, description="Why, for the audit log"), PG_TEXT]
    actor: Annotated[str, Field(min_length=1, max_length=128), PG_TEXT] = "operator-api"


@dataclass(frozen=True, slots=True)
class OperatorAction:
    at: datetime
    actor: str
    action: str  # e.g. tenant.create, route.drain
    target: str  # what it acted on, e.g. tenant:12, route:twilio-us
    reason: str
    detail: dict[str, Any]


def cli_actor() -> str:
    """``cli:<login name>``: who runs an operator command on this machine."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return "cli:unknown"


async def record(conn: Conn, *, actor: str, action: str, target: str, reason: str,
                 detail: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO operator_actions (actor, action, target, reason, detail)"
        " VALUES ($1, $2, $3, $4, $5::text::jsonb)",  # text: the same with or without a jsonb codec
        actor, action, target, reason, json.dumps(detail or {}))


_RECENT = """
SELECT at, actor, action, target, reason, detail::text AS detail FROM (
    SELECT at, actor, action, target, reason, detail FROM operator_actions
    UNION ALL
    SELECT at, actor, 'route.' || action, 'route:' || route, reason, '{}'::jsonb FROM route_actions
) AS a
WHERE $2::text IS NULL OR starts_with(a.action, $2)
ORDER BY at DESC LIMIT $1
"""


async def recent(conn: Conn, *, limit: int, action: str | None = None) -> list[OperatorAction]:
    """The latest ``limit`` actions (those whose action starts with ``action``, if given),
    newest first."""
    rows = await conn.fetch(_RECENT, limit, action)
    return [OperatorAction(r["at"], r["actor"], r["action"], r["target"], r["reason"],
                           json.loads(r["detail"])) for r in rows]
