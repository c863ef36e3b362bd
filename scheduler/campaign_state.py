"""Pausing, resuming and cancelling a campaign: the one way the marketer API, the operator API
and the CLI change a campaign's state.

A change moves the campaign and its unfinished runs in one transaction (and, when an operator
makes it, writes the operator audit log in the same one), then tells the senders through
``RunControl``; cancelling also drops the cancelled runs' cap reservations.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg

from hexcast.core import operator_log
from hexcast.core.control import RunControl, RunState
from hexcast.core.errors import ConflictError
from scheduler import repo
from scheduler.reserving import release_cancelled
from sender import CapReservations

__all__ = ["Audit", "CampaignAction", "change_state"]


class CampaignAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Audit:
    """Who makes an operator's change, and why (for the operator audit log)."""

    actor: str
    reason: str


# action -> (campaign state, run state, campaign states it may come from, run states it moves)
_MOVES: dict[CampaignAction, tuple[str, RunState, tuple[str, ...], list[str]]] = {
    CampaignAction.PAUSE: ("paused", RunState.PAUSED, ("active",), ["running"]),
    CampaignAction.RESUME: ("active", RunState.RUNNING, ("paused",), ["paused"]),
    CampaignAction.CANCEL: ("cancelled", RunState.CANCELLED, ("active", "paused"), ["running", "paused"]),
}


async def change_state(
    pool: asyncpg.Pool, control: RunControl, reservations: CapReservations | None, *,
    campaign_id: int, action: CampaignAction, tenant_id: int | None, audit: Audit | None = None,
) -> Any:
    """Apply ``action`` to the campaign (of ``tenant_id``; any tenant's for None) and return its
    row after; a campaign not in a state the action comes from is a ConflictError."""
    state, run_state, from_states, run_states = _MOVES[action]
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.get_campaign(conn, tenant_id=tenant_id, campaign_id=campaign_id)
        if row["state"] not in from_states:
            raise ConflictError(f"campaign {campaign_id} is {row['state']}")
        run_ids = await repo.set_campaign_state(conn, campaign_id=campaign_id, state=state,
                                                run_state=run_state.value, from_run_states=run_states)
        if audit is not None:
            await operator_log.record(
                conn, actor=audit.actor, action=f"campaign.{action.value}",
                target=f"campaign:{campaign_id}", reason=audit.reason,
                detail={"tenant_id": row["tenant_id"], "runs": run_ids, "was": row["state"]})
    for run_id in run_ids:
        await control.set_state(run_id, run_state)
    if action is CampaignAction.CANCEL and reservations is not None:
        await release_cancelled(pool, reservations, campaign_id=campaign_id)
    async with pool.acquire() as conn:
        return await repo.get_campaign(conn, tenant_id=tenant_id, campaign_id=campaign_id)
