"""Loading the synthetic demo dataset (:mod:`hexcast.synth.population`) into a migrated database.

Stores and promotions go through the catalog repo, the campaign and its run through the
scheduler repo; the bulk tables (recipients, visits, messages, waves, holdouts, links, clicks,
opt-outs) through COPY. The finished campaign (:mod:`hexcast.synth.campaign`) needs database ids
(its control group is chosen from campaign and recipient ids), so it is generated mid-load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from hexcast.core.db import Conn
from hexcast.core.tenants import create_tenant
from hexcast.synth.campaign import (
    SEND_RATE,
    SynthCampaign,
    campaign_fire,
    campaign_values,
    generate_campaign,
)
from hexcast.synth.population import DEMO_TENANT, SynthData, SynthMessage, SynthVisit, geo_messages
from scheduler import lifecycle_repo
from scheduler import repo as scheduler_repo
from scheduler.progress import end_state
from targeting import repo as targeting_repo
from targeting.models import StoreCreate
from targeting.service import fence_cells

__all__ = ["SynthSummary", "load", "recipient_ids"]


@dataclass(frozen=True, slots=True)
class SynthSummary:
    tenant_id: int
    api_key: str
    counts: dict[str, int]


_CONSENT = ("synthetic demo", "Offers by SMS from hexcast demo stores. Reply STOP to end.")
_REASONS = {"failed": "provider: undeliverable", "expired": "ttl passed before delivery"}


async def load(conn: Conn, data: SynthData, *, resolution: int) -> SynthSummary:
    """Replace the :data:`DEMO_TENANT` and everything it owns with ``data``, in one transaction."""
    async with conn.transaction():
        await conn.execute("DELETE FROM tenants WHERE name = $1", DEMO_TENANT)
        tenant, key = await create_tenant(conn, name=DEMO_TENANT)
        store_ids, cells = await _load_catalog(conn, data, tenant.id, resolution)
        promotion_ids = [
            (await targeting_repo.insert_promotion(
                conn, tenant_id=tenant.id, store_id=store_ids[p.store], name=p.name, body=p.body,
                interests=p.interests, valid_from=None, valid_until=None,
            ))["id"]
            for p in data.promotions
        ]
        await _copy_recipients(conn, data, tenant.id)
        campaign = await _load_campaign(conn, data, tenant.id)
        visits = data.visits + campaign.conversions
        await _copy_visits(conn, visits, tenant.id)
        messages = geo_messages(replace(data, visits=visits), tenant_id=tenant.id, store_ids=store_ids,
                                promotion_ids=promotion_ids, cells=cells, resolution=resolution,
                                opted_out=campaign.opt_outs)
        await _copy_messages(conn, messages, tenant.id)
    counts = {"stores": len(store_ids), "promotions": len(promotion_ids),
              "recipients": len(data.recipients), "visits": len(visits),
              "messages": len(messages) + len(campaign.messages),
              "campaign_messages": len(campaign.messages), "campaign_visits": len(campaign.conversions),
              "holdout": len(campaign.holdout_ids), "link_clicks": len(campaign.clicks),
              "opt_outs": len(campaign.opt_outs)}
    return SynthSummary(tenant.id, key, counts)


async def _load_catalog(
    conn: Conn, data: SynthData, tenant_id: int, resolution: int
) -> tuple[list[int], list[list[str]]]:
    ids: list[int] = []
    covers: list[list[str]] = []
    for s in data.stores:
        create = StoreCreate.model_validate({"name": s.name, "lat": s.lat, "lng": s.lng,
                                             "time_zone": s.time_zone, "geofence": s.geofence})
        cells = fence_cells(create, resolution=resolution)
        row = await targeting_repo.insert_store(
            conn, tenant_id=tenant_id, name=s.name, lat=s.lat, lng=s.lng, time_zone=s.time_zone,
            geofence=dict(s.geofence), cells=cells, h3_resolution=resolution,
        )
        ids.append(row["id"])
        covers.append(cells)
    return ids, covers


async def _copy_recipients(conn: Conn, data: SynthData, tenant_id: int) -> None:
    await conn.copy_records_to_table(
        "recipients",
        columns=["tenant_id", "user_id", "phone", "time_zone", "interests", "consent_at",
                 "consent_source", "consent_text", "opted_out_at"],
        records=[
            (tenant_id, r.user_id, r.phone, r.time_zone, r.interests, r.consent_at,
             *(_CONSENT if r.consent_at else (None, None)), r.opted_out_at)
            for r in data.recipients
        ],
    )


async def _copy_visits(conn: Conn, visits: Sequence[SynthVisit], tenant_id: int) -> None:
    await conn.copy_records_to_table(
        "visits",
        columns=["tenant_id", "event_id", "user_id", "lat", "lng", "accuracy_m", "cell", "ts",
                 "received_at"],
        records=[(tenant_id, v.event_id, v.user_id, v.lat, v.lng, v.accuracy_m, v.cell, v.ts,
                  v.received_at) for v in visits],
    )


_MESSAGE_COLUMNS = ["message_key", "tenant_id", "lane", "user_id", "phone", "body", "promotion_id",
                    "campaign_run_id", "state", "reason", "attempts", "provider",
                    "provider_message_id", "created_at", "updated_at", "sent_at", "delivered_at"]


async def _copy_messages(conn: Conn, messages: Sequence[SynthMessage], tenant_id: int) -> None:
    await conn.copy_records_to_table("messages", columns=_MESSAGE_COLUMNS, records=[
        (m.message_key, tenant_id, "geo", m.user_id, m.phone, m.body, m.promotion_id, None, m.state,
         _REASONS.get(m.state), 1, "sim", f"synth-{n}", m.created_at,
         m.delivered_at or m.created_at, m.created_at, m.delivered_at)
        for n, m in enumerate(messages)
    ])


# ------------------------------------------------------------------------- the finished campaign


async def _load_campaign(conn: Conn, data: SynthData, tenant_id: int) -> SynthCampaign:
    """The campaign and its run (scheduler repo), then the run's rows (COPY)."""
    values = campaign_values(data.params.until)
    row = await scheduler_repo.insert_campaign(conn, tenant_id=tenant_id, values=values)
    ids = await recipient_ids(conn, tenant_id=tenant_id)
    fire = campaign_fire(data.params.until)
    run_id = await scheduler_repo.insert_run(
        conn, campaign_id=row["id"], tenant_id=tenant_id, scheduled_for=fire.replace(tzinfo=None),
        first_fire_at=fire, rate=SEND_RATE, forecast={"rate_per_s": SEND_RATE}, waves=[],
    )
    if run_id is None:  # pragma: no cover - the tenant was just created
        raise RuntimeError("synthetic campaign run exists already")
    campaign = generate_campaign(data, campaign_id=row["id"], run_id=run_id, recipient_ids=ids)
    await _copy_run(conn, campaign, tenant_id, run_id)
    await _copy_run_outcomes(conn, campaign, tenant_id, run_id)
    counts = await lifecycle_repo.message_counts(conn, run_id=run_id)
    await lifecycle_repo.record_finish(conn, run_id=run_id, from_state="running", counts=counts,
                                       state=end_state("running", counts, 0), at=campaign.finished_at)
    return campaign


async def recipient_ids(conn: Conn, *, tenant_id: int) -> dict[str, int]:
    """Every recipient's database id by user id: the control group hangs on these ids."""
    rows = await conn.fetch("SELECT user_id, id FROM recipients WHERE tenant_id = $1", tenant_id)
    return {r["user_id"]: r["id"] for r in rows}


async def _copy_run(conn: Conn, c: SynthCampaign, tenant_id: int, run_id: int) -> None:
    """Its one wave, released in full (done), and its control group."""
    await conn.copy_records_to_table(
        "campaign_waves",
        columns=["run_id", "time_zone", "fire_at", "deadline_at", "state", "cursor_id", "released",
                 "held_out", "chunks", "started_at", "finished_at"],
        records=[(run_id, None, c.fire_at, c.fire_at + timedelta(hours=3), "done",
                  c.last_recipient_id, len(c.messages), len(c.holdout_ids), c.chunks, c.fire_at,
                  c.finished_at)],
    )
    await conn.execute("UPDATE campaign_runs SET released_at = $2 WHERE id = $1 AND tenant_id = $3",
                       run_id, c.finished_at, tenant_id)
    await conn.copy_records_to_table("campaign_holdouts", columns=["run_id", "recipient_id"],
                                     records=[(run_id, rid) for rid in c.holdout_ids])


async def _copy_run_outcomes(conn: Conn, c: SynthCampaign, tenant_id: int, run_id: int) -> None:
    """Messages, short links, clicks, and the STOP replies (opt-out list and profiles)."""
    await conn.copy_records_to_table("messages", columns=_MESSAGE_COLUMNS, records=[
        (m.message_key, tenant_id, "bulk", m.user_id, m.phone, m.body, None, run_id, m.state,
         _REASONS.get(m.state), 1, "sim", f"synth-bulk-{n}", m.sent_at,
         m.delivered_at or m.sent_at, m.sent_at, m.delivered_at)
        for n, m in enumerate(c.messages)
    ])
    await conn.copy_records_to_table(
        "short_links", columns=["code", "tenant_id", "message_key", "url", "created_at"],
        records=[(code, tenant_id, key, url, at) for code, key, url, at in c.links],
    )
    await conn.copy_records_to_table(
        "link_clicks", columns=["code", "at", "user_agent", "bot"],
        records=[(k.code, k.at, k.user_agent, k.bot) for k in c.clicks],
    )
    phones = {m.user_id: m.phone for m in c.messages}
    stops = sorted(c.opt_outs.items())
    await conn.copy_records_to_table(
        "opt_outs", columns=["tenant_id", "phone", "opted_out_at", "source"],
        records=[(tenant_id, phones[u], at, "reply") for u, at in stops],
    )
    await conn.copy_records_to_table(
        "inbound_messages", columns=["tenant_id", "phone", "body", "kind", "received_at"],
        records=[(tenant_id, phones[u], "STOP", "opt_out", at) for u, at in stops],
    )
    await conn.execute(
        "UPDATE recipients r SET opted_out_at = s.at, updated_at = s.at"
        " FROM unnest($2::text[], $3::timestamptz[]) AS s(user_id, at)"
        " WHERE r.tenant_id = $1 AND r.user_id = s.user_id",
        tenant_id, [u for u, _ in stops], [at for _, at in stops],
    )
