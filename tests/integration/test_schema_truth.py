"""The models agree with the tables, and the answers with their schema.

- Every numeric field of a request model that lands in a column is tried at the extremes the
  model allows, against the column's type and its CHECK constraints read from ``pg_constraint``
  on a migrated database: a value the model lets through and the table refuses (5e-324 in a
  ``real`` with ``CHECK (> 0)``, 2**31 in an ``integer``) was a 500.
- A field whose schema allows null lands in a nullable column (``"interests": null`` did not).
- Campaigns, previews and runs answer instants with an offset and wall times as ``local_time``
  beside their ``time_zone``: a 09:00 New York run is 09:00 there and 14:00Z.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, get_args, get_origin
from zoneinfo import ZoneInfo

import annotated_types as at
import asyncpg
import httpx
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.types import AllowInfNan

from scheduler.models import CampaignCreate, CampaignUpdate, PreviewRequest, TemplateCreate
from sender.api import InboundIn, OtpCreate
from sender.models import ReceiptBatch
from streams.models import VisitBatchIn, VisitIn
from targeting.imports import ImportRow
from targeting.models import (
    ConsentIn,
    DailyHours,
    PromotionCreate,
    RecipientCreate,
    RecipientUpdate,
    StoreCreate,
)
from tests.integration.apiworld import api_world
from tests.unit.test_model_constraints import _ROUTES

STORED: dict[type[BaseModel], tuple[str, str]] = {  # model → (table, column prefix)
    StoreCreate: ("stores", ""), PromotionCreate: ("promotions", ""), DailyHours: ("promotions", "hours_"),
    RecipientCreate: ("recipients", ""), RecipientUpdate: ("recipients", ""), ImportRow: ("recipients", ""),
    ConsentIn: ("recipients", "consent_"), TemplateCreate: ("templates", ""),
    CampaignCreate: ("campaigns", ""), CampaignUpdate: ("campaigns", ""), VisitIn: ("visits", ""),
    InboundIn: ("inbound_messages", ""),
}
NOT_STORED = {PreviewRequest, OtpCreate, ReceiptBatch, VisitBatchIn}
"""Bodies that are not rows: a forecast's options, records published to topics, receipts
applied to messages (their own module checks them)."""
NEW_YORK = ZoneInfo("America/New_York")
Field = tuple[type[BaseModel], str]
RENAMED: dict[Field, str] = {
    (InboundIn, "id"): "provider_ref", (InboundIn, "from"): "phone", (InboundIn, "from_"): "phone"}
NULL_MEANS_ELSE: dict[Field, str] = {(CampaignCreate, "body"): "null: the template's body is copied"}


def test_every_request_body_is_mapped_to_its_table_or_said_not_stored() -> None:
    bodies = {r.body_field.field_info.annotation for r in _ROUTES if r.body_field is not None}
    bodies = {a for b in bodies for a in (get_args(b) or (b,)) if a is not type(None)}
    assert bodies - set(STORED) - NOT_STORED == set()


def _leaves(tp: Any, meta: list[Any]) -> Iterator[tuple[type, list[Any]]]:
    """(int or float, its constraints) for a scalar or the items of a list field."""
    if get_origin(tp) is Annotated:
        base, *more = get_args(tp)
        yield from _leaves(base, [*meta, *more])
    elif tp in (int, float):
        yield tp, [c for m in meta for c in (m.metadata if isinstance(m, FieldInfo) else [m])]
    elif type(None) in get_args(tp):  # Optional: the constraints are the value's
        for arg in get_args(tp):
            yield from _leaves(arg, meta)
    elif get_origin(tp) is list:
        yield from _leaves(get_args(tp)[0], [])


def _extremes(tp: type, constraints: list[Any]) -> list[float]:
    """The least and greatest value the constraints allow (unbounded: beyond any column)."""
    big: Any = 10**30 if tp is int else sys.float_info.max
    low: Any = -big
    high: Any = big
    extra = [math.inf, -math.inf, math.nan] if tp is float else []
    for c in constraints:
        if isinstance(c, at.Ge | at.Gt):
            low = c.ge if isinstance(c, at.Ge) else _above(tp, c.gt, math.inf)
        elif isinstance(c, at.Le | at.Lt):
            high = c.le if isinstance(c, at.Le) else _above(tp, c.lt, -math.inf)
        elif isinstance(c, AllowInfNan) and not c.allow_inf_nan:
            extra = []
    return [low, high, *extra]


def _above(tp: type, bound: Any, toward: float) -> Any:
    """The next value of ``tp`` after an exclusive ``bound``, toward ``toward``."""
    return bound + (1 if toward > 0 else -1) if tp is int else math.nextafter(bound, toward)


_COLUMN = """
SELECT format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
    coalesce(array_agg(pg_get_constraintdef(c.oid)) FILTER (WHERE c.oid IS NOT NULL), '{}') AS checks
FROM pg_attribute a
LEFT JOIN pg_constraint c ON c.conrelid = a.attrelid AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum]
WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped
GROUP BY a.atttypid, a.atttypmod, a.attnotnull
"""


async def _refusal(conn: asyncpg.Connection, column: str, info: asyncpg.Record, value: float) -> str | None:
    """Why the column refuses ``value`` (bound as the column's type, as the api binds it)."""
    kind = str(info["type"]).removesuffix("[]")
    try:
        stored = await conn.fetchval(f"SELECT $1::{kind}", value)
    except (asyncpg.PostgresError, OverflowError, ValueError) as exc:
        return f"{value!r} does not fit {kind}: {exc}"
    if stored == 0 and value != 0:
        return f"{value!r} becomes 0 in {kind}"
    for check in info["checks"]:
        expr = check.removeprefix("CHECK ")
        holds = await conn.fetchval(
            f"SELECT ({expr}) IS NOT FALSE FROM (SELECT $1::{kind} AS {column}) AS t", value)
        if not holds:
            return f"{value!r} breaks {check}"
    return None


async def _columns(conn: asyncpg.Connection, model: type[BaseModel], names: Iterator[str]
                   ) -> list[tuple[str, str, asyncpg.Record]]:
    """(field, "table.column", column facts) for the fields of ``model`` that are columns."""
    table, prefix = STORED[model]
    found = []
    for name in names:
        column = RENAMED.get((model, name), prefix + name)
        info = await conn.fetchrow(_COLUMN, table, column)
        if info is not None:
            found.append((name, f"{table}.{column}", info))
    return found


async def test_numeric_bounds_of_the_models_fit_their_columns(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    problems, checked = [], set()
    try:
        for model in STORED:
            for name, column, info in await _columns(conn, model, iter(model.model_fields)):
                field = model.model_fields[name]
                for tp, constraints in _leaves(field.annotation, list(field.metadata)):
                    checked.add(f"{model.__name__}.{name}")
                    for value in _extremes(tp, constraints):
                        problem = await _refusal(conn, column.split(".")[1], info, value)
                        if problem:
                            problems.append(f"{model.__name__}.{name} → {column}: {problem}")
    finally:
        await conn.close()
    assert {"StoreCreate.accuracy_max_m", "PromotionCreate.budget", "PromotionCreate.weekdays",
            "VisitIn.accuracy_m", "CampaignUpdate.max_rate", "ImportRow.lat"} <= checked
    assert problems == []


def _admits_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(_admits_null(s) for s in schema.get("anyOf", []))


async def test_fields_whose_schema_allows_null_land_in_nullable_columns(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    problems = []
    try:
        for model in STORED:
            props = model.model_json_schema()["properties"]
            for name, column, info in await _columns(conn, model, iter(props)):
                allowed = (model, name) in NULL_MEANS_ELSE
                if _admits_null(props[name]) and not info["nullable"] and not allowed:
                    problems.append(f"{model.__name__}.{name} allows null; {column} does not")
    finally:
        await conn.close()
    assert problems == []


# --- answers: instants with offsets, wall times by name ---

@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[httpx.Client]:
    with api_world(broker_url, database_url, tmp_path_factory.mktemp("truth")) as world:
        yield world.api


def _campaign(api: httpx.Client, **over: Any) -> dict[str, Any]:
    body = {"name": "nine", "body": "Hi", "segment": {"everyone": True}, "time_zone": "America/New_York",
            "run_at": "2030-11-26T09:00:00", **over}
    made = api.post("/v1/campaigns", json=body)
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def test_a_fixed_nine_oclock_new_york_campaign_reads_back_with_offsets(api: httpx.Client) -> None:
    made = _campaign(api, deadline="2030-11-26T17:00:00")
    read = api.get(f"/v1/campaigns/{made['id']}").json()
    assert read == made
    assert read["run_at"] == "2030-11-26T09:00:00-05:00"  # was "2030-11-26T09:00:00"
    assert read["run_at_local"] == "2030-11-26T09:00:00"
    assert _instant(read["deadline"]) == datetime(2030, 11, 26, 22, tzinfo=UTC)
    assert _instant(read["created_at"]) <= datetime.now(UTC)
    preview = api.post(f"/v1/campaigns/{made['id']}/preview").json()
    assert (preview["local_time"], preview["time_zone"]) == ("2030-11-26T09:00:00", "America/New_York")
    assert _instant(preview["scheduled_for"]) == datetime(2030, 11, 26, 14, tzinfo=UTC)


def test_a_cron_preview_and_a_run_carry_the_wall_time_and_the_instant(api: httpx.Client) -> None:
    made = _campaign(api, run_at=None, cron="0 9 * * *")
    assert (made["run_at"], made["run_at_local"]) == (None, None)
    preview = api.post(f"/v1/campaigns/{made['id']}/preview").json()
    assert preview["local_time"].endswith("T09:00:00")
    assert preview["time_zone"] == "America/New_York"
    wall = datetime.fromisoformat(preview["local_time"])
    assert _instant(preview["scheduled_for"]).astimezone(NEW_YORK).replace(tzinfo=None) == wall
    run = api.post(f"/v1/campaigns/{made['id']}/run-now")
    assert run.status_code == 201, run.text
    started = _instant(run.json()["scheduled_for"])
    assert run.json()["local_time"] == started.astimezone(NEW_YORK).replace(tzinfo=None).isoformat()
    [listed] = api.get(f"/v1/campaigns/{made['id']}/runs").json()
    assert listed["time_zone"] == "America/New_York"
    assert _instant(listed["created_at"]) <= datetime.now(UTC)


def test_a_recipient_local_campaign_has_a_wall_time_and_no_single_zone(api: httpx.Client) -> None:
    made = _campaign(api, time_mode="recipient_local")
    assert (made["run_at"], made["run_at_local"]) == (None, "2030-11-26T09:00:00")
    preview = api.post(f"/v1/campaigns/{made['id']}/preview").json()
    assert (preview["local_time"], preview["time_zone"]) == ("2030-11-26T09:00:00", None)
    assert _instant(preview["scheduled_for"]) == datetime(2030, 11, 25, 19, tzinfo=UTC)  # 09:00 at UTC+14
