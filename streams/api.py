"""Routes: visit ingestion. Validates, then publishes to ``visits`` with broker acks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from hexcast.core import strictjson
from hexcast.core.bus import BusUnavailable
from hexcast.core.scopes import IngestTenant
from hexcast.core.web import BusDep
from streams.metrics import VISITS_ACCEPTED, VISITS_REJECTED
from streams.models import VisitBatchIn, VisitIn, VisitsAccepted
from streams.service import group_visits, visit_key

__all__ = ["openapi_schemas", "router"]

router = APIRouter(prefix="/v1", tags=["visits"])

_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/VisitIn"},
                        {"$ref": "#/components/schemas/VisitBatchIn"},
                    ]
                }
            }
        },
    }
}


def openapi_schemas() -> dict[str, Any]:
    """Component schemas the hand-written request body above refers to."""
    found: dict[str, Any] = {}
    for model in (VisitIn, VisitBatchIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


async def _parse(request: Request) -> list[VisitIn]:
    try:
        payload = strictjson.loads(await request.body())
    except strictjson.MalformedJSON as exc:
        VISITS_REJECTED.labels("malformed_json").inc()
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"malformed JSON: {exc}", "type": "json_invalid"}]
        ) from None
    try:
        if isinstance(payload, dict) and "events" in payload:
            return VisitBatchIn.model_validate(payload).events
        return [VisitIn.model_validate(payload)]
    except ValidationError as exc:
        VISITS_REJECTED.labels("invalid").inc(_events_in(payload))
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def _events_in(payload: object) -> int:
    """How many visit events a refused body holds (a batch is refused whole)."""
    events = payload.get("events") if isinstance(payload, dict) else None
    return len(events) if isinstance(events, list) and events else 1


@router.post(
    "/visits",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=VisitsAccepted,
    openapi_extra=_BODY_SCHEMA,
    summary="Ingest one visit event or a batch of up to 1,000",
)
async def post_visits(request: Request, tenant: IngestTenant, bus: BusDep) -> VisitsAccepted:
    events = await _parse(request)
    records = group_visits(tenant.id, events, received_at=datetime.now(UTC))
    try:
        await bus.publish_many(
            "visits", [(visit_key(r.tenant_id, r.user_id), r.encode()) for r in records]
        )
    except BusUnavailable:
        VISITS_REJECTED.labels("unavailable").inc(len(events))
        raise
    VISITS_ACCEPTED.labels(str(tenant.id)).inc(len(events))
    return VisitsAccepted(accepted=len(events), records=len(records))

