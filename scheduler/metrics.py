"""The scheduler's Prometheus metrics: runs by state, messages released, and the live progress
of unfinished campaign runs, for alerting.

``hexcast_scheduler_released_total`` is counted where a wave's chunk is published
(``scheduler.runner``). The gauges are refreshed by the scheduler process every
``REFRESH_S`` (:func:`refresh_campaign_gauges`, run by :func:`hexcast.core.metrics.refresh_every`)
from the runs' tallies (``scheduler.lifecycle.snapshots``: small tables, never ``messages``);
a scrape only reads them. Per tenant, campaign and zone: the seconds a zone is projected to
finish after its deadline (0 in time, ``+Inf`` when nothing is being sent), the projected
finish and the deadline (unix seconds), and what remains; per campaign the share of its
messages settled and the measured rate. Series of runs that finished are removed. An alert on
``hexcast_campaign_projected_late_seconds > 0`` fires with ``campaign.at_risk``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import Counter, Gauge

from hexcast.core.metrics import RefreshedGauge
from hexcast.core.settings import Settings
from scheduler import lifecycle_repo as lrepo
from scheduler.lifecycle import RunSnapshot, snapshots

__all__ = ["REFRESH_S", "RELEASED", "CampaignGauges", "campaign_gauges",
           "refresh_campaign_gauges"]

REFRESH_S = 5.0
"""How often the scheduler process refreshes its gauges."""
RUN_STATES = ("running", "paused", "cancelled")

RELEASED = Counter("hexcast_scheduler_released",
                   "Campaign messages the scheduler released to send.bulk", ["tenant", "campaign"])
_ZONE = ["tenant", "campaign", "zone"]
_RUNS = RefreshedGauge(Gauge("hexcast_scheduler_runs",
                             "Campaign runs not finished yet, by state", ["state"]))
_LATE = RefreshedGauge(Gauge(
    "hexcast_campaign_projected_late_seconds", "Seconds a zone of an unfinished campaign run is"
    " projected to finish after its deadline (0: in time; +Inf: nothing is being sent)", _ZONE))
_FINISH = RefreshedGauge(Gauge(
    "hexcast_campaign_projected_finish_timestamp_seconds", "When a zone with messages left is"
    " projected to finish, unix seconds (+Inf: never at the measured rate)", _ZONE))
_DEADLINE = RefreshedGauge(Gauge("hexcast_campaign_deadline_timestamp_seconds",
                                 "A zone's deadline, unix seconds", _ZONE))
_REMAINING = RefreshedGauge(Gauge("hexcast_campaign_remaining_messages",
                                  "Messages of a zone not yet settled by the senders", _ZONE))
_PROGRESS = RefreshedGauge(Gauge(
    "hexcast_campaign_progress_ratio",
    "Share of an unfinished campaign run's messages settled (reached a provider or an outcome)",
    ["tenant", "campaign"]))
_RATE = RefreshedGauge(Gauge("hexcast_campaign_measured_rate_per_s",
                             "Messages an unfinished campaign run settles per second (measured)",
                             ["tenant", "campaign"]))

Zone = tuple[str, str, str]
Campaign = tuple[str, str]


@dataclass
class CampaignGauges:
    """The gauges' values by labels. Several unfinished runs of one campaign add up (remaining,
    progress, rate); of their zones the latest projection and the earliest deadline count."""

    late: dict[Zone, float] = field(default_factory=dict)
    finish: dict[Zone, float] = field(default_factory=dict)
    deadline: dict[Zone, float] = field(default_factory=dict)
    remaining: dict[Zone, float] = field(default_factory=dict)
    progress: dict[Campaign, float] = field(default_factory=dict)
    rate: dict[Campaign, float] = field(default_factory=dict)


def campaign_gauges(runs: Sequence[RunSnapshot]) -> CampaignGauges:
    """The gauges of ``runs`` (``scheduler.lifecycle.snapshots``)."""
    g = CampaignGauges()
    settled: dict[Campaign, int] = {}
    total: dict[Campaign, int] = {}
    for snap in runs:
        campaign = (str(snap.run["tenant_id"]), str(snap.run["campaign_id"]))
        g.rate[campaign] = g.rate.get(campaign, 0.0) + snap.rate_per_s
        settled[campaign] = settled.get(campaign, 0) + snap.tally.settled
        total[campaign] = (total.get(campaign, 0) + snap.tally.settled
                           + sum(z.remaining for z in snap.zones))
        for z in snap.zones:
            key = (*campaign, z.time_zone or snap.run["campaign_zone"])
            g.late[key] = max(g.late.get(key, 0.0), z.late_s)
            g.remaining[key] = g.remaining.get(key, 0) + z.remaining
            if z.remaining > 0:
                at = math.inf if z.projected_finish_at is None else z.projected_finish_at.timestamp()
                g.finish[key] = max(g.finish.get(key, -math.inf), at)
            if z.deadline_at is not None:
                g.deadline[key] = min(g.deadline.get(key, math.inf), z.deadline_at.timestamp())
    g.progress = {c: min(settled[c] / n, 1.0) if n else 1.0 for c, n in total.items()}
    return g


def _publish(g: CampaignGauges, runs_by_state: dict[str, int]) -> None:
    _RUNS.replace({(state,): float(runs_by_state.get(state, 0))
                   for state in (*RUN_STATES, *runs_by_state)})
    _LATE.replace(g.late)
    _FINISH.replace(g.finish)
    _DEADLINE.replace(g.deadline)
    _REMAINING.replace(g.remaining)
    _PROGRESS.replace(g.progress)
    _RATE.replace(g.rate)


async def refresh_campaign_gauges(settings: Settings, pool: asyncpg.Pool) -> None:
    """Read the unfinished runs' progress and the runs by state; set the gauges."""
    async with pool.acquire() as conn:
        found = await snapshots(conn, quiet_hours_on=settings.sender_quiet_hours)
        by_state = await lrepo.unfinished_runs_by_state(conn)
    _publish(campaign_gauges(found), by_state)
