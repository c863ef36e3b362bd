"""Operator routes of the api for alerts (operator token): Alertmanager's webhook receiver and
the list of alerts firing now (``hexcast.core.alerts``). deploy/alertmanager/alertmanager.yml
points its receiver here, with the operator token as bearer credentials."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from hexcast.core import alerts
from hexcast.core.alerts import AlertmanagerPayload
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.web import Limit, PoolDep, RequireOperator

__all__ = ["AlertPublic", "AlertsRecorded", "router"]

router = APIRouter(prefix="/v1/admin/alerts", tags=["operators"], dependencies=[RequireOperator])


class AlertsRecorded(BaseModel):
    recorded: int = Field(description="Alerts stored or changed by this notification")


class AlertPublic(BaseModel):
    id: int
    alertname: str
    status: str = Field(description="firing or resolved")
    severity: str = Field(description="critical, warning or info (the rule's `severity` label)")
    tenant_id: int | None = Field(description="The tenant its `tenant` label names, if any")
    provider: str = Field(description="The route its `provider` label names, or empty")
    summary: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = Field(description="When it resolved; null while firing")
    fingerprint: str


@router.post("/alertmanager", response_model=AlertsRecorded)
async def alertmanager_webhook(payload: AlertmanagerPayload, pool: PoolDep) -> AlertsRecorded:
    """Alertmanager's webhook receiver (payload version 4): each alert of the notification is
    stored or updated; a tenant's alert is forwarded to its webhooks as ``alert.firing`` /
    ``alert.resolved``."""
    async with pool.acquire() as conn:
        recorded = await alerts.record_alerts(conn, payload=payload)
    return AlertsRecorded(recorded=recorded)


@router.get("", response_model=list[AlertPublic])
async def firing_alerts(
    pool: PoolDep,
    tenant: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="Only this tenant's")] = None,
    limit: Limit = 100,
) -> list[AlertPublic]:
    """Alerts firing now, the latest to start first (Alertmanager's notifications, grouped by
    tenant and provider, keep it current)."""
    async with pool.acquire() as conn:
        found = await alerts.firing_alerts(conn, tenant_id=tenant, limit=limit)
    return [AlertPublic(id=a.id, alertname=a.alertname, status=a.status,
                        severity=a.labels.get("severity", ""), tenant_id=a.tenant_id,
                        provider=a.provider, summary=a.annotations.get("summary", ""),
                        labels=a.labels, annotations=a.annotations, starts_at=a.starts_at,
                        ends_at=a.ends_at, fingerprint=a.fingerprint) for a in found]
