"""Alerts Alertmanager posts to hexcast (its webhook receiver, payload version 4), kept in
``alerts`` (migration 0027) for the console and the operator API.

One row per alert occurrence, keyed by Alertmanager's fingerprint and the alert's start: a
repeated notification updates it, its resolution marks it resolved (and a late repeat of the
firing notification does not bring it back), the same alert firing again later is a new row.
An alert whose ``tenant`` label names a tenant belongs to it; the migration's triggers write
``alert.firing`` and ``alert.resolved`` to that tenant's webhook outbox. Plain SQL,
keyword-only arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from hexcast.core.db import Conn
from hexcast.core.pgtext import PG_TEXT

__all__ = ["Alert", "AlertmanagerAlert", "AlertmanagerPayload", "firing_alerts", "record_alerts"]

LabelName = Annotated[str, Field(min_length=1, max_length=256), PG_TEXT]
LabelValue = Annotated[str, Field(max_length=4096), PG_TEXT]
AnnotationValue = Annotated[str, Field(max_length=16_384), PG_TEXT]
Status = Literal["firing", "resolved"]
_NEVER = datetime(1970, 1, 2, tzinfo=UTC)  # Alertmanager's zero time (0001-01-01) means "not set"


class AlertmanagerAlert(BaseModel):
    """One alert of a notification, as Alertmanager's webhook sends it."""

    model_config = ConfigDict(populate_by_name=True)

    status: Status
    labels: Annotated[dict[LabelName, LabelValue], Field(max_length=64)]
    annotations: Annotated[dict[LabelName, AnnotationValue], Field(max_length=64)] = {}
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(default=None, alias="endsAt",
                                          description="Zero time (0001-01-01) while firing")
    generator_url: Annotated[str, Field(max_length=4096), PG_TEXT] = Field(default="", alias="generatorURL")
    fingerprint: Annotated[str, Field(min_length=1, max_length=64), PG_TEXT]

    @field_validator("ends_at")
    @classmethod
    def _zero_is_unset(cls, value: datetime | None) -> datetime | None:
        return None if value is not None and value < _NEVER else value


class AlertmanagerPayload(BaseModel):
    """A notification of one alert group (Alertmanager's ``webhook_configs``, version 4)."""

    model_config = ConfigDict(populate_by_name=True)

    version: Literal["4"]
    group_key: Annotated[str, Field(max_length=4096), PG_TEXT] = Field(alias="groupKey")
    truncated_alerts: Annotated[int, Field(ge=0)] = Field(default=0, alias="truncatedAlerts")
    status: Status
    receiver: Annotated[str, Field(max_length=256), PG_TEXT]
    group_labels: Annotated[dict[LabelName, LabelValue], Field(max_length=64)] = Field(
        default={}, alias="groupLabels")
    common_labels: Annotated[dict[LabelName, LabelValue], Field(max_length=64)] = Field(
        default={}, alias="commonLabels")
    common_annotations: Annotated[dict[LabelName, AnnotationValue], Field(max_length=64)] = Field(
        default={}, alias="commonAnnotations")
    external_url: Annotated[str, Field(max_length=4096), PG_TEXT] = Field(default="", alias="externalURL")
    alerts: Annotated[list[AlertmanagerAlert], Field(max_length=1000)]


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    fingerprint: str
    status: Status
    alertname: str
    tenant_id: int | None
    provider: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None  # when it resolved; None while firing
    updated_at: datetime


_RECORD = """
INSERT INTO alerts AS a (fingerprint, status, alertname, tenant_id, provider, labels,
                         annotations, starts_at, ends_at)
SELECT n.fingerprint, n.status, COALESCE(n.labels ->> 'alertname', ''),
       (SELECT t.id FROM tenants t
        WHERE n.labels ->> 'tenant' ~ '^[0-9]{1,18}$' AND t.id = (n.labels ->> 'tenant')::bigint),
       COALESCE(n.labels ->> 'provider', ''), n.labels, n.annotations, n.starts_at,
       CASE WHEN n.status = 'resolved' THEN n.ends_at END
FROM jsonb_to_recordset($1::text::jsonb) AS n(fingerprint text, status text, labels jsonb,
                                               annotations jsonb, starts_at timestamptz,
                                               ends_at timestamptz)
ON CONFLICT (fingerprint, starts_at) DO UPDATE
    SET status = EXCLUDED.status, ends_at = EXCLUDED.ends_at, labels = EXCLUDED.labels,
        annotations = EXCLUDED.annotations, updated_at = now()
    WHERE a.status = 'firing'
"""


async def record_alerts(conn: Conn, *, payload: AlertmanagerPayload) -> int:
    """Insert or update the notification's alerts; returns how many rows changed."""
    latest = {(a.fingerprint, a.starts_at): a for a in payload.alerts}  # one row, one change
    rows = [{"fingerprint": a.fingerprint, "status": a.status, "labels": a.labels,
             "annotations": a.annotations, "starts_at": a.starts_at.isoformat(),
             "ends_at": a.ends_at.isoformat() if a.ends_at else None} for a in latest.values()]
    if not rows:
        return 0
    done = await conn.execute(_RECORD, json.dumps(rows))
    return int(done.rsplit(" ", 1)[-1])


_FIRING = """
SELECT id, fingerprint, status, alertname, tenant_id, provider, labels::text AS labels,
       annotations::text AS annotations, starts_at, ends_at, updated_at
FROM alerts
WHERE status = 'firing' AND ($1::bigint IS NULL OR tenant_id = $1)
ORDER BY starts_at DESC, id DESC LIMIT $2
"""


async def firing_alerts(conn: Conn, *, tenant_id: int | None, limit: int) -> list[Alert]:
    """Alerts firing now (all, or ``tenant_id``'s), the latest to start first."""
    return [_alert(r) for r in await conn.fetch(_FIRING, tenant_id, limit)]


def _alert(row: asyncpg.Record) -> Alert:
    return Alert(id=row["id"], fingerprint=row["fingerprint"], status=row["status"],
                 alertname=row["alertname"], tenant_id=row["tenant_id"], provider=row["provider"],
                 labels=json.loads(row["labels"]), annotations=json.loads(row["annotations"]),
                 starts_at=row["starts_at"], ends_at=row["ends_at"], updated_at=row["updated_at"])
