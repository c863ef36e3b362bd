"""Routes: visit ingestion. Validates, then publishes to ``visits`` with broker acks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from hexcast.core import strictjson
from hexcast.core.cache import Keys
from hexcast.core.scopes import IngestTenant
from hexcast.core.web import BusDep, RequireOperator, SettingsDep
from streams.metrics import render_matcher_metrics
from streams.models import VisitBatchIn, VisitIn, VisitsAccepted
from streams.service import group_visits, visit_key

__all__ = ["metrics_router", "openapi_schemas", "router"]

router = APIRouter(prefix="/v1", tags=["visits"])
metrics_router = APIRouter()

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
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"malformed JSON: {exc}", "type": "json_invalid"}]
        ) from None
    try:
        if isinstance(payload, dict) and "events" in payload:
            return VisitBatchIn.model_validate(payload).events
        return [VisitIn.model_validate(payload)]
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


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
    await bus.publish_many(
        "visits", [(visit_key(r.tenant_id, r.user_id), r.encode()) for r in records]
    )
    return VisitsAccepted(accepted=len(events), records=len(records))


@metrics_router.get("/metrics/matcher", tags=["ops"], response_class=PlainTextResponse,
                    dependencies=[RequireOperator])
async def matcher_metrics(request: Request, settings: SettingsDep) -> str:
    """Prometheus text: matcher visits in, matched, and suppressed by reason, per tenant (every
    tenant's: the operator token only)."""
    return await render_matcher_metrics(request.app.state.redis, Keys(settings.redis_prefix))
