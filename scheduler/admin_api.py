"""Operator routes of the scheduler (operator token): pause, resume or cancel any tenant's
campaign, with the actor and the reason in the operator audit log
(``scheduler.campaign_state``)."""

from __future__ import annotations

from fastapi import APIRouter

from hexcast.core.operator_log import Audited
from hexcast.core.web import IdPath, PoolDep, RequireOperator
from scheduler.api import ControlDep, ReservationsDep
from scheduler.campaign_state import Audit, CampaignAction, change_state
from scheduler.models import CampaignPublic
from scheduler.views import campaign_public

__all__ = ["CampaignActionIn", "router"]

router = APIRouter(prefix="/v1/admin/campaigns", tags=["operators"], dependencies=[RequireOperator])


class CampaignActionIn(Audited):
    action: CampaignAction


@router.post("/{campaign_id}/actions", response_model=CampaignPublic)
async def campaign_action(campaign_id: IdPath, body: CampaignActionIn, pool: PoolDep,
                          control: ControlDep, reservations: ReservationsDep) -> CampaignPublic:
    """Pause, resume or cancel a campaign of any tenant, as its marketer can (a campaign not
    in a state the action comes from is a 409); audited with the actor and the reason."""
    row = await change_state(pool, control, reservations, campaign_id=campaign_id,
                             action=body.action, tenant_id=None,
                             audit=Audit(actor=body.actor, reason=body.reason))
    return campaign_public(row)
