"""Operator tasks behind the CLI: migrations, tenants, catalog republishing."""

from __future__ import annotations

from hexcast.core import operator_log
from hexcast.core.bus import Bus
from hexcast.core.db import Conn, apply_migrations, connect_pool
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from hexcast.core.tenants import Tenant, create_tenant
from hexcast.synth import SynthParams, SynthSummary, generate, load
from targeting import repo as targeting_repo
from targeting.service import profile_record, promotion_record, store_record

__all__ = ["demo_data", "migrate", "new_tenant", "open_tenant", "sync_catalog"]

_log = get_logger(__name__)


async def migrate(settings: Settings) -> list[str]:
    pool = await connect_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            return await apply_migrations(conn)
    finally:
        await pool.close()


async def open_tenant(conn: Conn, *, name: str, actor: str, reason: str) -> tuple[Tenant, str]:
    """A new tenant and its first admin key (shown this once), recorded in the operator audit
    log in the same transaction."""
    async with conn.transaction():
        tenant, key = await create_tenant(conn, name=name)
        await operator_log.record(conn, actor=actor, action="tenant.create",
                                  target=f"tenant:{tenant.id}", reason=reason,
                                  detail={"name": tenant.name})
    return tenant, key


async def new_tenant(settings: Settings, name: str, *, actor: str, reason: str) -> tuple[int, str]:
    pool = await connect_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            tenant, key = await open_tenant(conn, name=name, actor=actor, reason=reason)
    finally:
        await pool.close()
    return tenant.id, key


async def sync_catalog(settings: Settings) -> dict[str, int]:
    """Republish the source of truth: used after a broker loses its (memory-only) topics."""
    pool = await connect_pool(settings.database_url, max_size=1)
    bus = Bus(settings)
    await bus.start()
    counts = {"stores": 0, "promotions": 0, "profiles": 0}
    try:
        async with pool.acquire() as conn:
            stores = [store_record(r) for r in await targeting_repo.all_stores(conn)]
            promos = [promotion_record(r) for r in await targeting_repo.all_promotions(conn)]
            await bus.publish_many("catalog", [(r.key, r.encode()) for r in stores + promos])
            counts["stores"], counts["promotions"] = len(stores), len(promos)
            after = 0
            while rows := await targeting_repo.all_recipients(conn, after_id=after, limit=5000):
                profiles = [profile_record(r) for r in rows]
                await bus.publish_many("profiles", [(p.key, p.encode()) for p in profiles])
                counts["profiles"] += len(rows)
                after = rows[-1]["id"]
    finally:
        await bus.stop()
        await pool.close()
    return counts


async def demo_data(settings: Settings, params: SynthParams) -> SynthSummary:
    """Migrate, then (re)load the synthetic analytics dataset into ``settings.database_url``."""
    data = generate(params)
    pool = await connect_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
            summary = await load(conn, data, resolution=settings.h3_resolution)
    finally:
        await pool.close()
    _log.info("demo data loaded", tenant_id=summary.tenant_id, seed=params.seed, **summary.counts)
    return summary
