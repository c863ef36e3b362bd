"""A finished synthetic bulk campaign for the demo dataset: one run, one wave, a control group.

Pure and deterministic (seed, campaign and recipient ids). The segment is every consenting
recipient with a 20 % holdout chosen exactly as the scheduler chooses it
(:func:`targeting.segments.is_holdout`). Messaged recipients get outcomes (delivered, failed,
expired), short links with human and bot clicks, a few STOP opt-outs, and a real effect: some
delivered recipients make an extra store visit in the days after the send. The control group
only has its ordinary visits, so the holdout comparison shows a positive lift. The control
group hangs on the campaign and recipient ids, so each reload draws a different one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import h3

from hexcast.synth.population import SynthData, SynthRecipient, SynthStore, SynthVisit
from sender.keys import bulk_key
from sender.links import shorten
from streams import ARCHIVE_RESOLUTION
from targeting.geofence import destination
from targeting.segments import SegmentDefinition, is_holdout

__all__ = [
    "CAMPAIGN_NAME",
    "CONVERSION_WINDOW",
    "HOLDOUT_PCT",
    "SEND_RATE",
    "CampaignMessage",
    "Click",
    "SynthCampaign",
    "campaign_fire",
    "campaign_values",
    "generate_campaign",
]

CAMPAIGN_NAME = "Black Friday early access (synthetic, finished)"
_BODY = "Black Friday starts early at our stores: doors open 6pm, deals at https://shop.example.com/bf"
_ZONE = "America/New_York"
HOLDOUT_PCT = 20.0
SEND_RATE = 20.0  # messages/s the run was paced at
CONVERSION_WINDOW = timedelta(hours=72)
"""A conversion: a store visit within this window after the send (the control's too)."""
_LINK_BASE = "https://hx.example"
_STATES = (("delivered", 0.93), ("failed", 0.04), ("expired", 0.03))
_CLICK = {"techie": 0.22, "trendsetter": 0.2, "athlete": 0.12, "foodie": 0.1, "homebody": 0.07}
_BOT_PREFETCH = 0.3
_OPT_OUT = 0.015
_VISIT_AFTER = {True: 0.4, False: 0.11}  # extra store visit if delivered: clicked / not
_HUMAN_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148"
_BOT_UA = "facebookexternalhit/1.1"


def _local_run_at(until: datetime) -> datetime:
    day = until.astimezone(ZoneInfo(_ZONE)).date() - timedelta(days=5)
    return datetime(day.year, day.month, day.day, 18)


def campaign_fire(until: datetime) -> datetime:
    """The send instant: 18:00 in New York five days before the end of the visit history."""
    return _local_run_at(until).replace(tzinfo=ZoneInfo(_ZONE)).astimezone(UTC)


def campaign_values(until: datetime) -> dict[str, Any]:
    """The campaign row (as the API would store it): fixed time, 18:00-21:00 New York."""
    segment = SegmentDefinition(everyone=True, holdout_pct=HOLDOUT_PCT)
    local = _local_run_at(until)
    return {
        "name": CAMPAIGN_NAME, "body": _BODY, "time_zone": _ZONE, "time_mode": "fixed",
        "segment": segment.model_dump(mode="json", exclude_defaults=True), "run_at": local,
        "deadline": local + timedelta(hours=3), "lane": "bulk",
    }


@dataclass(frozen=True, slots=True)
class CampaignMessage:
    message_key: str
    user_id: str
    phone: str
    body: str
    state: str
    sent_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Click:
    code: str
    at: datetime
    user_agent: str
    bot: bool


@dataclass(frozen=True, slots=True)
class SynthCampaign:
    fire_at: datetime
    finished_at: datetime
    holdout_ids: list[int]
    last_recipient_id: int
    messages: list[CampaignMessage]
    links: list[tuple[str, str, str, datetime]]  # code, message key, url, created
    clicks: list[Click]
    opt_outs: dict[str, datetime]  # user id -> when they replied STOP
    conversions: list[SynthVisit]  # the extra store visits the campaign caused

    @property
    def chunks(self) -> int:
        return math.ceil((len(self.messages) + len(self.holdout_ids)) / 500)


def _audience(
    recipients: Sequence[SynthRecipient], ids: Mapping[str, int]
) -> list[tuple[int, SynthRecipient]]:
    """Who ``everyone`` selects (consent, not opted out), in release (id) order."""
    chosen = [(ids[r.user_id], r) for r in recipients
              if r.consent_at is not None and r.opted_out_at is None]
    return sorted(chosen, key=lambda pair: pair[0])


def generate_campaign(
    data: SynthData, *, campaign_id: int, run_id: int, recipient_ids: Mapping[str, int]
) -> SynthCampaign:
    """The run's messages and outcomes, its control group and the visits it caused."""
    rng = random.Random(data.params.seed + 2)
    fire = campaign_fire(data.params.until)
    audience = _audience(data.recipients, recipient_ids)
    by_metro = {s.metro: [x for x in data.stores if x.metro == s.metro] for s in data.stores}
    held: list[int] = []
    out = SynthCampaign(fire, fire, held, max((i for i, _ in audience), default=0), [], [], [], {}, [])
    for rid, person in audience:
        if is_holdout(campaign_id=campaign_id, recipient_id=rid, pct=HOLDOUT_PCT):
            held.append(rid)
            continue
        sent = fire + timedelta(seconds=len(out.messages) / SEND_RATE)
        _message(out, rng, person, bulk_key(campaign_run_id=run_id, recipient_id=rid), sent,
                 by_metro[person.metro], data.params.seed)
    last = out.messages[-1].sent_at if out.messages else fire
    return replace(out, finished_at=last)


def _message(
    out: SynthCampaign, rng: random.Random, person: SynthRecipient, key: str, sent: datetime,
    stores: Sequence[SynthStore], seed: int,
) -> None:
    body, links = shorten(_BODY, message_key=key, base_url=_LINK_BASE)
    state = rng.choices([s for s, _ in _STATES], weights=[w for _, w in _STATES])[0]
    delivered = sent + timedelta(seconds=rng.uniform(2, 20)) if state == "delivered" else None
    out.messages.append(CampaignMessage(key, person.user_id, person.phone, body, state, sent, delivered))
    out.links.extend((link.code, key, link.url, sent) for link in links)
    if delivered is None:
        return
    code = links[0].code
    if rng.random() < _BOT_PREFETCH:
        out.clicks.append(Click(code, delivered + timedelta(seconds=rng.uniform(1, 5)), _BOT_UA, True))
    clicked = rng.random() < _CLICK[person.persona]
    if clicked:
        at = delivered + timedelta(minutes=rng.expovariate(1 / 40))
        out.clicks.append(Click(code, at, _HUMAN_UA, False))
    if rng.random() < _OPT_OUT:
        out.opt_outs[person.user_id] = delivered + timedelta(minutes=rng.uniform(1, 90))
    elif rng.random() < _VISIT_AFTER[clicked]:
        store = rng.choice(stores)
        at = delivered + timedelta(hours=rng.uniform(0.5, 60))
        event_id = f"synth-{seed}-c{len(out.conversions):06d}"
        out.conversions.append(_store_visit(store, person.user_id, at, rng, event_id))


def _store_visit(store: SynthStore, user: str, at: datetime, rng: random.Random, event_id: str) -> SynthVisit:
    lat, lng = destination(store.lat, store.lng, rng.uniform(0, 20), rng.uniform(0, 360))
    lat, lng = round(lat, 6), round(lng, 6)
    return SynthVisit(event_id=event_id, user_id=user, lat=lat, lng=lng, accuracy_m=10.0,
                      cell=h3.latlng_to_cell(lat, lng, ARCHIVE_RESOLUTION), ts=at,
                      received_at=at + timedelta(seconds=rng.randint(1, 30)))
