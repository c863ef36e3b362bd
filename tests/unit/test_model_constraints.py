"""Request and response models keep their promises. Pure.

Every text a request carries (bodies, path and query ids, text inside lists and dict keys) is
:data:`~hexcast.core.pgtext.PgText`; every datetime an answer carries is an instant with an offset
or a :data:`~hexcast.core.instants.WallTime`, documented as such; client-given past instants are
plausible; PATCH fields whose columns are NOT NULL refuse null and say so in their schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import AfterValidator, BaseModel, NaiveDatetime, ValidationError, WithJsonSchema

from hexcast.api import create_app
from hexcast.core.instants import check_past_instant
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.settings import Settings
from scheduler.api import router as campaigns
from scheduler.models import CampaignCreate, CampaignPublic, CampaignUpdate, QuietHoursIn
from sender.api import OtpCreate
from sender.api import router as sender
from streams.api import router as visits
from streams.models import VisitBatchIn
from targeting.api import router as catalog
from targeting.imports import ImportRow
from targeting.models import ConsentIn, PromotionCreate, RecipientUpdate, StoreCreate

_ROUTES = [r for router in (catalog, campaigns, sender, visits) for r in router.routes
           if isinstance(r, APIRoute)]
_HAND_READ_BODIES = [VisitBatchIn, ImportRow]
"""Bodies the routes read themselves (visits, recipient import): not in the route signature."""


def _walk(tp: Any, meta: list[Any], where: str, seen: set[type]) -> Iterator[tuple[str, Any, list[Any]]]:
    """(where, leaf type, its Annotated metadata) for every leaf of ``tp``, models opened."""
    if get_origin(tp) is Annotated:
        base, *more = get_args(tp)
        yield from _walk(base, [*meta, *more], where, seen)
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in seen:
            seen.add(tp)
            for name, field in tp.model_fields.items():
                yield from _walk(field.annotation, list(field.metadata), f"{tp.__name__}.{name}", seen)
    elif get_origin(tp) in (Union, UnionType):  # ``Annotated[str | None, ..., PG_TEXT]``
        for arg in get_args(tp):
            yield from _walk(arg, meta, where, seen)
    elif get_args(tp):
        for arg in get_args(tp):
            yield from _walk(arg, [], where, seen)
    else:
        yield where, tp, meta


def _is_pg_text(meta: list[Any]) -> bool:
    return any(m is PG_TEXT for m in meta)


def _request_leaves(seen: set[type] | None = None, routes: list[APIRoute] = _ROUTES
                    ) -> Iterator[tuple[str, Any, list[Any]]]:
    """Every leaf of every request (path, query, body); ``seen`` collects the models opened."""
    seen = set() if seen is None else seen
    for route in routes:
        params = route.dependant.path_params + route.dependant.query_params
        for param in params:
            info = param.field_info
            yield from _walk(info.annotation, list(info.metadata), f"{route.path} {param.name}", seen)
        if route.body_field is not None:
            yield from _walk(route.body_field.field_info.annotation, [], route.path, seen)
    for model in _HAND_READ_BODIES:
        yield from _walk(model, [], model.__name__, seen)


def test_every_request_text_is_pg_text() -> None:
    """A plain ``str`` anywhere in a request (a field, a list item, a dict key, a path id)
    would let NUL or a lone surrogate through to PostgreSQL, which answered 500."""
    plain = sorted({where for where, tp, meta in _request_leaves() if tp is str and not _is_pg_text(meta)})
    assert plain == []


def _generic_limits(schema: Any) -> bool:
    """Whether a core schema holds a limit pydantic could not put on its string (or number)
    and checks with a generic wrapper instead: a limit written on a validated type."""
    if callable(schema):  # the wrappers: pydantic's generic limit checks
        func = getattr(schema, "func", schema)
        return (getattr(func, "__module__", "") == "pydantic._internal._validators"
                or "incompatibility" in getattr(func, "__qualname__", ""))
    if isinstance(schema, dict):
        return any(_generic_limits(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_generic_limits(v) for v in schema)
    return False


def test_every_request_limit_sits_on_its_string() -> None:
    """``Annotated[PgText, Field(max_length=80)]`` put the limit on the text check, not on the
    string: a 422 said "Value should have at most 80 items after validation" and every such
    field took an extra validation step. Limits come first: ``Annotated[str, Field(...),
    PG_TEXT]``."""
    routes = [c.original_route for c in iter_route_contexts(create_app(Settings()).routes)
              if isinstance(c.original_route, APIRoute)]
    models: set[type] = set()
    for _ in _request_leaves(models, routes):
        pass
    wrapped = sorted(m.__name__ for m in models if _generic_limits(m.__pydantic_core_schema__))  # type: ignore[attr-defined]
    params = sorted(f"{route.path} {p.name}" for route in routes
                    for p in route.dependant.path_params + route.dependant.query_params
                    if _generic_limits(p._type_adapter.core_schema))
    assert (wrapped, params) == ([], [])
    with pytest.raises(ValidationError, match="at most 1600 characters"):
        OtpCreate.model_validate({"phone": "+13125550100", "body": "x" * 1601})


def test_every_answered_datetime_is_an_instant_or_a_wall_time() -> None:
    """A naive ``datetime`` in an answer was written without an offset under ``date-time``;
    a wall time is a :data:`~hexcast.core.instants.WallTime`, whose schema says so."""
    seen: set[type] = set()
    leaves = [leaf for route in _ROUTES if route.response_field is not None
              for leaf in _walk(route.response_field.field_info.annotation, [], route.path, seen)]
    naive = sorted({where for where, tp, meta in leaves if tp is datetime or (
        tp is NaiveDatetime and not any(isinstance(m, WithJsonSchema) for m in meta))})
    assert naive == []
    assert {where for where, tp, _ in leaves if tp is NaiveDatetime} == {
        "CampaignPublic.run_at_local", "CampaignPublic.deadline_local", "PreviewPublic.local_time",
        "RunPublic.local_time"}


def test_every_time_of_day_is_a_wall_clock_without_an_offset() -> None:
    """A ``time`` field took "21:00+02:00" and compared it with naive times (a 500), and its
    schema said ``time``, which RFC 3339 gives an offset."""
    seen: set[type] = set()
    leaves = [*_request_leaves(), *(leaf for route in _ROUTES if route.response_field is not None
                                    for leaf in _walk(route.response_field.field_info.annotation, [],
                                                      route.path, seen))]
    clocks = {where for where, tp, _ in leaves if tp is time}
    assert {"DailyHours.start", "QuietHoursIn.end"} <= clocks
    assert sorted(where for where, tp, meta in leaves if tp is time and not any(
        isinstance(m, AfterValidator) and m.func.__name__ == "_no_offset" for m in meta)) == []
    with pytest.raises(ValidationError, match="without an offset"):
        QuietHoursIn.model_validate({"start": "21:00+02:00", "end": "08:00"})


def test_wall_times_are_not_documented_as_date_time() -> None:
    schema = CampaignPublic.model_json_schema(mode="serialization")["properties"]
    local = schema["run_at_local"]["anyOf"][0]
    assert "format" not in local
    assert local["pattern"].startswith("^")
    assert schema["run_at"]["anyOf"][0]["format"] == "date-time"


_NOW = datetime.now(UTC)


@pytest.mark.parametrize("value", [
    datetime(4810, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59), _NOW + timedelta(days=2),
    datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
])
def test_implausible_past_instants_are_refused(value: datetime) -> None:
    with pytest.raises(ValueError, match="future|before 1970"):
        check_past_instant(value)


@pytest.mark.parametrize("value", [_NOW + timedelta(hours=23), datetime(2026, 1, 1), datetime(1970, 1, 1)])
def test_plausible_past_instants_pass(value: datetime) -> None:
    assert check_past_instant(value) is value


@pytest.mark.parametrize(("model", "body", "field"), [
    (ConsentIn, {"at": "4810-01-01T00:00:00Z", "source": "app", "text": "ok"}, "at"),
    (ImportRow, {"user_id": "u", "phone": "+13125550100", "consent_at": "9999-01-01T00:00:00Z"},
     "consent_at"),
    (ImportRow, {"user_id": "u", "phone": "+13125550100", "last_visit_at": "4810-01-01"}, "last_visit_at"),
])
def test_models_refuse_far_future_instants_naming_the_field(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize(("model", "field", "needle"), [
    (RecipientUpdate, "interests", "valid list"),
    (RecipientUpdate, "phone", "valid string"),
    (CampaignUpdate, "name", "valid string"),
    (CampaignUpdate, "body", "valid string"),
])
def test_null_for_a_not_null_column_is_refused_and_not_in_the_schema(
    model: type[BaseModel], field: str, needle: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({field: None})
    assert [(e["loc"], needle in e["msg"]) for e in caught.value.errors()] == [((field,), True)]
    prop = model.model_json_schema()["properties"][field]
    assert prop["type"] in ("string", "array")
    assert not {"anyOf", "default"} & set(prop)


def test_null_for_a_nullable_column_is_kept() -> None:
    assert RecipientUpdate.model_validate({"time_zone": None}).columns() == {"time_zone": None}
    assert CampaignUpdate.model_validate({"max_rate": None}).columns() == {"max_rate": None}
    assert CampaignUpdate.model_validate({"name": " n "}).columns() == {"name": "n"}


_STORE = {"name": "s", "lat": 1.0, "lng": 1.0, "time_zone": "UTC",
          "geofence": {"type": "circle", "radius_m": 50}}


@pytest.mark.parametrize(("model", "body", "field"), [
    (StoreCreate, {**_STORE, "accuracy_max_m": 5e-324}, "accuracy_max_m"),
    (PromotionCreate, {"store_id": 1, "name": "p", "body": "b", "budget": 2**31}, "budget"),
    (CampaignCreate, {"name": "c", "body": "b", "segment": {"everyone": True}, "time_zone": "UTC",
                      "run_at": "9999-12-31T20:00:00"}, "run_at"),
])
def test_values_the_columns_cannot_hold_are_refused(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert [e["loc"][0] for e in caught.value.errors()] == [field]
