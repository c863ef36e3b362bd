"""SQL of the provider receipts waiting to be applied (migration 0012), and of carrier opt-outs.

A part's row only moves forward (see ``sender.rollup.advances``, the same rule in SQL), so a
duplicated or late callback changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hexcast.core.db import Conn
from sender.providers.status import DeliveryStatus, ErrorClass
from sender.rollup import PartReceipt, advances

__all__ = [
    "Stored",
    "Target",
    "mark_applied",
    "places",
    "record_carrier_opt_outs",
    "rekey",
    "store",
    "targets",
    "waiting",
]

Key = tuple[str, str]  # (provider, ref)

_RANK = "CASE {0} WHEN 'accepted' THEN 0 WHEN 'sent' THEN 1 ELSE 2 END"

_FORWARD = f"""
ON CONFLICT (provider, ref, part) DO UPDATE SET
    status = EXCLUDED.status, code = EXCLUDED.code, error_class = EXCLUDED.error_class,
    parts = GREATEST(r.parts, EXCLUDED.parts), received_at = now()
WHERE {_RANK.format("r.status")} < 2
    AND {_RANK.format("EXCLUDED.status")} > {_RANK.format("r.status")}
"""

_STORE = f"""
INSERT INTO provider_receipts AS r (provider, ref, by_ref, part, parts, status, code, error_class)
SELECT $1, * FROM unnest($2::text[], $3::boolean[], $4::int[], $5::int[], $6::text[], $7::text[],
                         $8::text[])
{_FORWARD}"""

# Receipts that named a part by its id before the acceptance kept the part ids: moved to their
# message and place (one statement; the insert follows the same forward-only rule).
_REKEY = f"""
WITH moved AS (
    DELETE FROM provider_receipts x USING provider_parts p
    WHERE x.provider = p.provider AND x.ref = p.part_id AND NOT x.by_ref AND x.applied_at IS NULL
        AND (p.message_key = ANY($1::text[])
             OR (x.provider, x.ref) IN (SELECT * FROM unnest($2::text[], $3::text[])))
    RETURNING p.provider, p.message_key, p.part, p.parts, x.status, x.code, x.error_class
)
INSERT INTO provider_receipts AS r (provider, ref, by_ref, part, parts, status, code, error_class)
SELECT DISTINCT ON (provider, message_key, part)
    provider, message_key, true, part, parts, status, code, error_class
FROM moved ORDER BY provider, message_key, part, {_RANK.format("status")} DESC
{_FORWARD}RETURNING r.provider, r.ref"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One part's receipt as kept: which message it names (``ref``, ``by_ref``) and the part."""

    ref: str
    by_ref: bool
    receipt: PartReceipt


@dataclass(frozen=True, slots=True)
class Target:
    """The message a receipt names: its key (= client reference), tenant and number."""

    message_key: str
    tenant_id: int
    phone: str


async def store(conn: Conn, *, provider: str, receipts: Sequence[Stored]) -> None:
    """Keep each part's latest receipt (forward moves only; duplicates change nothing)."""
    latest: dict[tuple[str, int], Stored] = {}
    for item in receipts:  # one row per part in a statement: ON CONFLICT cannot touch a row twice
        key = (item.ref, item.receipt.part)
        old = latest.get(key)
        if old is None or advances(old.receipt.status, item.receipt.status):
            latest[key] = item
    rows = list(latest.values())
    await conn.execute(
        _STORE, provider, [r.ref for r in rows], [r.by_ref for r in rows],
        [r.receipt.part for r in rows], [r.receipt.parts for r in rows],
        [r.receipt.status.value for r in rows], [r.receipt.code for r in rows],
        [r.receipt.error_class.value if r.receipt.error_class else None for r in rows],
    )


async def places(
    conn: Conn, *, provider: str, part_ids: Sequence[str]
) -> dict[str, tuple[str, int, int]]:
    """Where the parts named by these ids belong: part id → (message key, part, parts)."""
    if not part_ids:
        return {}
    rows = await conn.fetch(
        "SELECT part_id, message_key, part, parts FROM provider_parts"
        " WHERE provider = $1 AND part_id = ANY($2::text[])", provider, list(part_ids))
    return {r["part_id"]: (r["message_key"], r["part"], r["parts"]) for r in rows}


async def rekey(
    conn: Conn, *, message_keys: Sequence[str] = (), keys: Sequence[Key] = ()
) -> list[Key]:
    """Move receipts kept under a part's id (they came before the part ids were kept) to their
    message and place: those of ``message_keys`` and those kept as ``keys`` (provider, part
    id). Returns the (provider, message key) keys they now have."""
    if not message_keys and not keys:
        return []
    rows = await conn.fetch(_REKEY, list(message_keys), [k[0] for k in keys], [k[1] for k in keys])
    return list(dict.fromkeys((r["provider"], r["ref"]) for r in rows))


async def waiting(
    conn: Conn, *, keys: Sequence[Key] = (), refs: Sequence[str] = ()
) -> dict[tuple[str, str, bool], list[PartReceipt]]:
    """The unapplied parts of the messages named by ``keys`` (provider, ref) or by ``refs``
    (any provider), per (provider, ref, by_ref)."""
    cols = "SELECT provider, ref, by_ref, part, parts, status, code, error_class FROM provider_receipts"
    rows = list(await conn.fetch(
        f"{cols} WHERE applied_at IS NULL AND ref = ANY($1::text[])", list(refs))) if refs else []
    if keys:
        rows += await conn.fetch(
            f"{cols} WHERE applied_at IS NULL"
            " AND (provider, ref) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [k[0] for k in keys], [k[1] for k in keys])
    out: dict[tuple[str, str, bool], list[PartReceipt]] = {}
    for r in rows:
        out.setdefault((r["provider"], r["ref"], r["by_ref"]), []).append(PartReceipt(
            part=r["part"], parts=r["parts"], status=DeliveryStatus(r["status"]), code=r["code"],
            error_class=ErrorClass(r["error_class"]) if r["error_class"] else None))
    return out


async def targets(
    conn: Conn, *, message_keys: Sequence[str], provider_ids: Sequence[str]
) -> tuple[dict[str, Target], dict[str, Target]]:
    """The messages named by key and by provider message id (those not known are left out)."""
    rows = await conn.fetch(
        "SELECT message_key, provider_message_id, tenant_id, phone FROM messages"
        " WHERE message_key = ANY($1::text[])"
        " UNION ALL SELECT message_key, provider_message_id, tenant_id, phone FROM messages"
        " WHERE provider_message_id = ANY($2::text[])",
        list(message_keys), list(provider_ids),
    )
    by_key = {r["message_key"]: Target(r["message_key"], r["tenant_id"], r["phone"]) for r in rows}
    by_id = {r["provider_message_id"]: Target(r["message_key"], r["tenant_id"], r["phone"])
             for r in rows if r["provider_message_id"] is not None}
    return by_key, by_id


async def mark_applied(conn: Conn, *, keys: Sequence[Key]) -> None:
    await conn.execute(
        "UPDATE provider_receipts SET applied_at = now() WHERE applied_at IS NULL"
        " AND (provider, ref) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [k[0] for k in keys], [k[1] for k in keys],
    )


async def record_carrier_opt_outs(conn: Conn, *, recipients: Sequence[tuple[int, str]]
                                  ) -> list[int]:
    """Numbers the carrier reports unsubscribed (Twilio 21610): opted out for the tenant, as a
    STOP reply would (``sender.consent`` then suppresses their marketing). Returns the tenant
    of each opt-out that is new."""
    if not recipients:
        return []
    tenants, phones = [r[0] for r in recipients], [r[1] for r in recipients]
    new = await conn.fetch(
        "INSERT INTO opt_outs (tenant_id, phone, source) SELECT *, 'carrier'"
        " FROM unnest($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING RETURNING tenant_id",
        tenants, phones)
    await conn.execute(
        "UPDATE recipients r SET opted_out_at = now(), updated_at = now()"
        " FROM unnest($1::bigint[], $2::text[]) AS x(t, p)"
        " WHERE r.tenant_id = x.t AND r.phone = x.p AND r.opted_out_at IS NULL", tenants, phones)
    return [int(r["tenant_id"]) for r in new]
