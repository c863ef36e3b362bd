"""Campaign scheduling (cron and one-shot runs, local-time waves).

What the app layer's console reads and does through the scheduler is exported here."""

from scheduler.campaign_state import Audit, CampaignAction, change_state
from scheduler.lifecycle import RunSnapshot, snapshots
from scheduler.repo import get_campaign, list_runs

__all__ = [
    "Audit",
    "CampaignAction",
    "RunSnapshot",
    "change_state",
    "get_campaign",
    "list_runs",
    "snapshots",
]
