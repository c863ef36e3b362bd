"""``/metrics/campaigns``: the live progress of unfinished campaign runs, for alerting.

Prometheus text, computed on each scrape from the runs' tallies (``scheduler.lifecycle``):
per tenant, campaign and zone, the seconds a zone is projected to finish after its deadline
(0 in time, ``+Inf`` when nothing is being sent), what remains, and each run's measured rate.
An alert on ``hexcast_campaign_projected_late_seconds > 0`` fires with ``campaign.at_risk``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from hexcast.core.web import PoolDep, RequireOperator, SettingsDep
from scheduler.lifecycle import RunSnapshot, snapshots

__all__ = ["metrics_router", "render_campaign_metrics"]

metrics_router = APIRouter()

_LATE = "hexcast_campaign_projected_late_seconds"
_REMAINING = "hexcast_campaign_remaining_messages"
_RATE = "hexcast_campaign_measured_rate_per_s"


def _number(value: float) -> str:
    return "+Inf" if math.isinf(value) else f"{value:.3f}"


def render_campaign_metrics(runs: Sequence[RunSnapshot]) -> str:
    """The gauges of ``runs`` (a campaign's runs, should several be unfinished, add up; the
    lateness is the largest)."""
    late: dict[tuple[int, int, str], float] = {}
    remaining: dict[tuple[int, int, str], int] = {}
    rate: dict[tuple[int, int], float] = {}
    for snap in runs:
        tenant, campaign = snap.run["tenant_id"], snap.run["campaign_id"]
        rate[tenant, campaign] = rate.get((tenant, campaign), 0.0) + snap.rate_per_s
        for z in snap.zones:
            key = (tenant, campaign, z.time_zone or snap.run["campaign_zone"])
            late[key] = max(late.get(key, 0.0), z.late_s)
            remaining[key] = remaining.get(key, 0) + z.remaining
    lines = [f"# HELP {_LATE} Seconds a zone of a running campaign is projected to finish after"
             " its deadline (0: in time)", f"# TYPE {_LATE} gauge"]
    lines += [f'{_LATE}{{tenant="{t}",campaign="{c}",zone="{z}"}} {_number(v)}'
              for (t, c, z), v in sorted(late.items())]
    lines += [f"# TYPE {_REMAINING} gauge"]
    lines += [f'{_REMAINING}{{tenant="{t}",campaign="{c}",zone="{z}"}} {v}'
              for (t, c, z), v in sorted(remaining.items())]
    lines += [f"# TYPE {_RATE} gauge"]
    lines += [f'{_RATE}{{tenant="{t}",campaign="{c}"}} {_number(v)}'
              for (t, c), v in sorted(rate.items())]
    return "\n".join(lines) + "\n"


@metrics_router.get("/metrics/campaigns", tags=["ops"], response_class=PlainTextResponse,
                    dependencies=[RequireOperator])
async def campaign_metrics(pool: PoolDep, settings: SettingsDep) -> str:
    """Prometheus text: unfinished campaign runs' projected lateness per zone, what remains and
    their measured rate (every tenant's: the operator token only)."""
    async with pool.acquire() as conn:
        return render_campaign_metrics(
            await snapshots(conn, quiet_hours_on=settings.sender_quiet_hours))
