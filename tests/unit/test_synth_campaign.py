"""The synthetic finished campaign: the scheduler's audience and holdout, outcomes, a real effect."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hexcast.synth import SynthData, SynthParams, generate
from hexcast.synth.campaign import (
    CONVERSION_WINDOW,
    HOLDOUT_PCT,
    SynthCampaign,
    campaign_fire,
    campaign_values,
    generate_campaign,
)
from scheduler.models import CampaignCreate
from sender.keys import bulk_key
from sender.links import is_bot
from targeting.segments import is_holdout

UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
CAMPAIGN, RUN = 41, 77


@pytest.fixture(scope="module")
def data() -> SynthData:
    return generate(SynthParams(recipients=800, stores=12, seed=3, until=UNTIL))


@pytest.fixture(scope="module")
def ids(data: SynthData) -> dict[str, int]:
    return {r.user_id: 1000 + n for n, r in enumerate(data.recipients)}


@pytest.fixture(scope="module")
def campaign(data: SynthData, ids: dict[str, int]) -> SynthCampaign:
    return generate_campaign(data, campaign_id=CAMPAIGN, run_id=RUN, recipient_ids=ids)


def test_the_campaign_row_is_one_the_api_accepts_at_six_pm_new_york() -> None:
    values = campaign_values(UNTIL)
    create = CampaignCreate.model_validate(values)
    assert create.segment.everyone
    assert create.segment.holdout_pct == HOLDOUT_PCT
    fire = campaign_fire(UNTIL)
    assert fire.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None) == values["run_at"]
    assert fire.astimezone(ZoneInfo("America/New_York")).hour == 18
    summer = campaign_fire(datetime(2026, 7, 10, tzinfo=UTC))  # daylight saving time
    assert summer.astimezone(ZoneInfo("America/New_York")).hour == 18


def test_audience_and_holdout_are_the_schedulers(
    data: SynthData, ids: dict[str, int], campaign: SynthCampaign
) -> None:
    audience = {r.user_id for r in data.recipients if r.consent_at and not r.opted_out_at}
    messaged = {m.user_id for m in campaign.messages}
    held = {u for u in ids if ids[u] in set(campaign.holdout_ids)}
    assert messaged | held == audience
    assert not messaged & held
    assert held == {u for u in audience
                    if is_holdout(campaign_id=CAMPAIGN, recipient_id=ids[u], pct=HOLDOUT_PCT)}
    assert 0.15 < len(held) / len(audience) < 0.25
    assert {m.message_key for m in campaign.messages} == {
        bulk_key(campaign_run_id=RUN, recipient_id=ids[u]) for u in messaged}
    assert campaign.last_recipient_id == max(ids[u] for u in audience)


def test_sends_are_paced_after_the_fire_and_outcomes_are_consistent(campaign: SynthCampaign) -> None:
    sent = [m.sent_at for m in campaign.messages]
    assert sent == sorted(sent)
    assert sent[0] == campaign.fire_at
    assert campaign.finished_at == sent[-1]
    assert {m.state for m in campaign.messages} == {"delivered", "failed", "expired"}
    assert all((m.delivered_at is not None) == (m.state == "delivered") for m in campaign.messages)
    assert all("https://shop.example.com" not in m.body and "/r/" in m.body for m in campaign.messages)
    assert len(campaign.links) == len(campaign.messages)


def test_clicks_and_stops_come_only_after_delivery(campaign: SynthCampaign) -> None:
    by_code = {code: key for code, key, _, _ in campaign.links}
    delivered = {m.message_key: m for m in campaign.messages if m.delivered_at is not None}
    assert campaign.clicks
    for click in campaign.clicks:
        message = delivered[by_code[click.code]]
        assert message.delivered_at is not None
        assert click.at > message.delivered_at
        assert click.bot == is_bot(click.user_agent)
    assert any(c.bot for c in campaign.clicks)
    assert any(not c.bot for c in campaign.clicks)
    stops = {m.user_id: m.delivered_at for m in delivered.values() if m.user_id in campaign.opt_outs}
    assert set(stops) == set(campaign.opt_outs)
    assert all(campaign.opt_outs[u] > at for u, at in stops.items() if at is not None)


def test_the_effect_extra_store_visits_of_delivered_recipients_in_the_window(
    data: SynthData, campaign: SynthCampaign
) -> None:
    delivered = {m.user_id: m.delivered_at for m in campaign.messages if m.delivered_at is not None}
    stores = [(s.lat, s.lng) for s in data.stores]
    assert len(campaign.conversions) > 0.05 * len(delivered)
    for visit in campaign.conversions:
        start = delivered[visit.user_id]
        assert start is not None
        assert start < visit.ts < start + CONVERSION_WINDOW
        assert min(abs(visit.lat - lat) + abs(visit.lng - lng) for lat, lng in stores) < 0.001
    assert len({v.event_id for v in campaign.conversions} | {v.event_id for v in data.visits}) == (
        len(campaign.conversions) + len(data.visits))
    assert not set(delivered) & set(campaign.opt_outs) & {v.user_id for v in campaign.conversions}


def test_deterministic(data: SynthData, ids: dict[str, int], campaign: SynthCampaign) -> None:
    assert generate_campaign(data, campaign_id=CAMPAIGN, run_id=RUN, recipient_ids=ids) == campaign
    other = generate_campaign(data, campaign_id=CAMPAIGN + 1, run_id=RUN, recipient_ids=ids)
    assert other.holdout_ids != campaign.holdout_ids
    assert campaign.fire_at + CONVERSION_WINDOW < UNTIL  # the window lies inside the history
