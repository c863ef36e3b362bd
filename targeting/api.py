"""Routes: a tenant's stores, promotions and recipients. Changes reach matchers via topics."""

from __future__ import annotations

import csv
import io
import tempfile
from typing import IO, Literal

import asyncpg
from fastapi import APIRouter, Request, status

from hexcast.core.bus import BusUnavailable
from hexcast.core.errors import ConflictError, InvalidInput
from hexcast.core.scopes import MarketerTenant
from hexcast.core.web import AfterId, BusDep, IdPath, Limit, PoolDep, SettingsDep, TextPath
from targeting import repo
from targeting.imports import ImportReport, ImportRow, import_rows, parse_csv, parse_json
from targeting.models import (
    PromotionCreate,
    PromotionPublic,
    RecipientCreate,
    RecipientPublic,
    RecipientUpdate,
    StoreCreate,
    StorePublic,
)
from targeting.service import (
    fence_cells,
    policy_columns,
    profile_record,
    promotion_public,
    promotion_record,
    recipient_public,
    store_public,
    store_record,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.post("/stores", status_code=status.HTTP_201_CREATED, response_model=StorePublic)
async def create_store(
    body: StoreCreate, tenant: MarketerTenant, pool: PoolDep, bus: BusDep, settings: SettingsDep
) -> StorePublic:
    cells = fence_cells(body, resolution=settings.h3_resolution)
    async with pool.acquire() as conn:
        row = await repo.insert_store(
            conn, tenant_id=tenant.id, name=body.name, lat=body.lat, lng=body.lng,
            time_zone=body.time_zone, geofence=body.geofence.model_dump(), cells=cells,
            h3_resolution=settings.h3_resolution, accuracy_max_m=body.accuracy_max_m,
        )
    return await _publish_store(bus, row)


@router.get("/stores", response_model=list[StorePublic])
async def list_stores(
    tenant: MarketerTenant, pool: PoolDep, after_id: AfterId = 0, limit: Limit = 100
) -> list[StorePublic]:
    async with pool.acquire() as conn:
        rows = await repo.list_stores(conn, tenant_id=tenant.id, after_id=after_id, limit=limit)
    return [store_public(r) for r in rows]


@router.get("/stores/{store_id}", response_model=StorePublic)
async def get_store(store_id: IdPath, tenant: MarketerTenant, pool: PoolDep) -> StorePublic:
    async with pool.acquire() as conn:
        return store_public(await repo.get_store(conn, tenant_id=tenant.id, store_id=store_id))


@router.put("/stores/{store_id}", response_model=StorePublic)
async def replace_store(
    store_id: IdPath, body: StoreCreate, tenant: MarketerTenant, pool: PoolDep, bus: BusDep,
    settings: SettingsDep,
) -> StorePublic:
    """Replace a store (fence, zone, accuracy...); running matchers pick it up from the catalog."""
    cells = fence_cells(body, resolution=settings.h3_resolution)
    async with pool.acquire() as conn:
        row = await repo.replace_store(
            conn, tenant_id=tenant.id, store_id=store_id, name=body.name, lat=body.lat,
            lng=body.lng, time_zone=body.time_zone, geofence=body.geofence.model_dump(),
            cells=cells, h3_resolution=settings.h3_resolution, accuracy_max_m=body.accuracy_max_m,
        )
    return await _publish_store(bus, row)


@router.post("/stores/{store_id}/{action}", response_model=StorePublic)
async def set_store_active(
    store_id: IdPath, action: Literal["activate", "deactivate"], tenant: MarketerTenant, pool: PoolDep,
    bus: BusDep,
) -> StorePublic:
    async with pool.acquire() as conn:
        row = await repo.set_store_active(
            conn, tenant_id=tenant.id, store_id=store_id, active=action == "activate"
        )
    return await _publish_store(bus, row)


async def _publish_store(bus: BusDep, row: repo.Row) -> StorePublic:
    record = store_record(row)
    await bus.publish("catalog", record.key, record.encode())
    return store_public(row)


@router.post("/promotions", status_code=status.HTTP_201_CREATED, response_model=PromotionPublic)
async def create_promotion(
    body: PromotionCreate, tenant: MarketerTenant, pool: PoolDep, bus: BusDep
) -> PromotionPublic:
    async with pool.acquire() as conn:
        row = await repo.insert_promotion(
            conn, tenant_id=tenant.id, store_id=body.store_id, name=body.name, body=body.body,
            interests=body.interests, valid_from=body.valid_from, valid_until=body.valid_until,
            policy=policy_columns(body),
        )
    return await _publish_promotion(bus, row)


@router.get("/promotions", response_model=list[PromotionPublic])
async def list_promotions(
    tenant: MarketerTenant, pool: PoolDep, after_id: AfterId = 0, limit: Limit = 100
) -> list[PromotionPublic]:
    async with pool.acquire() as conn:
        rows = await repo.list_promotions(
            conn, tenant_id=tenant.id, after_id=after_id, limit=limit
        )
    return [promotion_public(r) for r in rows]


@router.get("/promotions/{promotion_id}", response_model=PromotionPublic)
async def get_promotion(promotion_id: IdPath, tenant: MarketerTenant, pool: PoolDep) -> PromotionPublic:
    async with pool.acquire() as conn:
        return promotion_public(
            await repo.get_promotion(conn, tenant_id=tenant.id, promotion_id=promotion_id))


@router.put("/promotions/{promotion_id}", response_model=PromotionPublic)
async def replace_promotion(
    promotion_id: IdPath, body: PromotionCreate, tenant: MarketerTenant, pool: PoolDep, bus: BusDep
) -> PromotionPublic:
    """Replace a promotion (body, interests, dates, policy); matchers apply it from the catalog."""
    async with pool.acquire() as conn:
        row = await repo.replace_promotion(
            conn, tenant_id=tenant.id, promotion_id=promotion_id, store_id=body.store_id,
            name=body.name, body=body.body, interests=body.interests, valid_from=body.valid_from,
            valid_until=body.valid_until, policy=policy_columns(body),
        )
    return await _publish_promotion(bus, row)


@router.post("/promotions/{promotion_id}/{action}", response_model=PromotionPublic)
async def set_promotion_active(
    promotion_id: IdPath, action: Literal["activate", "deactivate"], tenant: MarketerTenant,
    pool: PoolDep, bus: BusDep,
) -> PromotionPublic:
    async with pool.acquire() as conn:
        row = await repo.set_promotion_active(
            conn, tenant_id=tenant.id, promotion_id=promotion_id, active=action == "activate"
        )
    return await _publish_promotion(bus, row)


async def _publish_promotion(bus: BusDep, row: repo.Row) -> PromotionPublic:
    record = promotion_record(row)
    await bus.publish("catalog", record.key, record.encode())
    return promotion_public(row)


@router.post("/recipients", status_code=status.HTTP_201_CREATED, response_model=RecipientPublic)
async def create_recipient(
    body: RecipientCreate, tenant: MarketerTenant, pool: PoolDep, bus: BusDep
) -> RecipientPublic:
    consent = body.consent
    async with pool.acquire() as conn:
        row = await repo.insert_recipient(
            conn, tenant_id=tenant.id, user_id=body.user_id, phone=body.phone,
            time_zone=body.time_zone, interests=body.interests,
            consent_at=consent.at if consent else None,
            consent_source=consent.source if consent else None,
            consent_text=consent.text if consent else None,
        )
    record = profile_record(row)
    await bus.publish("profiles", record.key, record.encode())
    return recipient_public(row)


# --- recipient import (issue 4) ---
_IMPORT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": ImportRow.model_json_schema()}},
        },
    }
}


async def _spool(request: Request, limit: int) -> IO[bytes]:
    fh = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed by the caller
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            fh.close()
            raise InvalidInput(f"import body exceeds {limit} bytes", field="body")
        fh.write(chunk)
    fh.seek(0)
    return fh


async def _publish_profiles(pool: PoolDep, bus: BusDep, tenant_id: int, ids: list[int]) -> bool:
    """Publish changed recipients to ``profiles``; False if the broker did not take them."""
    try:
        for start in range(0, len(ids), 1000):
            async with pool.acquire() as conn:
                rows = await repo.recipients_by_ids(conn, tenant_id=tenant_id, ids=ids[start:start + 1000])
            records = [profile_record(r) for r in rows]
            await bus.publish_many("profiles", [(r.key, r.encode()) for r in records])
    except BusUnavailable:
        return False
    return True


@router.post("/recipients/import", response_model=ImportReport, openapi_extra=_IMPORT_DOC)
async def import_recipients(
    request: Request, tenant: MarketerTenant, pool: PoolDep, bus: BusDep, settings: SettingsDep
) -> ImportReport:
    """Bulk create or update recipients from CSV (header row; interests separated by ``|``),
    NDJSON or a JSON array. Bad rows are reported by line and skipped; good rows are upserted
    on user_id, so a retry imports each row once. Changed recipients are then published to
    the profiles topic (``profiles_published``; if false, run ``hexcast catalog sync``)."""
    # A body of another type than _IMPORT_DOC's is a 415 from the body guard (hexcast/core/bodyguard.py).
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await _spool(request, settings.import_max_bytes)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")  # type: ignore[type-var]
    rows = parse_csv(text) if ctype == "text/csv" else parse_json(text)
    try:
        async with pool.acquire() as conn:
            report, changed = await import_rows(conn, tenant_id=tenant.id, rows=rows,
                                                resolution=settings.h3_resolution)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"body is not UTF-8: {exc.reason}", field="body") from None
    except csv.Error as exc:
        raise InvalidInput(f"malformed CSV, nothing imported: {exc}", field="body") from None
    except asyncpg.UniqueViolationError as exc:
        raise ConflictError(f"rows swap phones between recipients, nothing imported: {exc}") from None
    finally:
        text.close()
    published = await _publish_profiles(pool, bus, tenant.id, changed)
    return report.model_copy(update={"profiles_published": published})


@router.get("/recipients", response_model=list[RecipientPublic])
async def list_recipients(
    tenant: MarketerTenant, pool: PoolDep, after_id: AfterId = 0, limit: Limit = 100
) -> list[RecipientPublic]:
    async with pool.acquire() as conn:
        rows = await repo.list_recipients(conn, tenant_id=tenant.id, after_id=after_id, limit=limit)
    return [recipient_public(r) for r in rows]


@router.get("/recipients/{user_id}", response_model=RecipientPublic)
async def get_recipient(user_id: TextPath, tenant: MarketerTenant, pool: PoolDep) -> RecipientPublic:
    async with pool.acquire() as conn:
        return recipient_public(await repo.get_recipient(conn, tenant_id=tenant.id, user_id=user_id))


@router.patch("/recipients/{user_id}", response_model=RecipientPublic)
async def update_recipient(
    user_id: TextPath, body: RecipientUpdate, tenant: MarketerTenant, pool: PoolDep, bus: BusDep
) -> RecipientPublic:
    """Change a recipient's phone, zone, interests or consent; matchers see it via ``profiles``."""
    async with pool.acquire() as conn:
        row = await repo.update_recipient(conn, tenant_id=tenant.id, user_id=user_id,
                                          columns=body.columns())
    record = profile_record(row)
    await bus.publish("profiles", record.key, record.encode())
    return recipient_public(row)


@router.delete("/recipients/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_recipient(user_id: TextPath, tenant: MarketerTenant, pool: PoolDep, bus: BusDep) -> None:
    """Erase a recipient; matchers forget the profile (a tombstone on ``profiles``)."""
    async with pool.acquire() as conn:
        await repo.delete_recipient(conn, tenant_id=tenant.id, user_id=user_id)
    await bus.publish("profiles", f"{tenant.id}:{user_id}", None)
