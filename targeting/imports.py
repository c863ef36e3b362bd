"""Bulk recipient import (CSV or NDJSON/JSON): validate every row, COPY the good ones, upsert.

Rows are validated one by one (E.164 with ``phonenumbers``, IANA zones, interests); a bad row is
reported with its line number and skipped. Good rows are streamed with COPY into a temporary
table and upserted on (tenant, user_id) in one transaction, so a fatal error imports nothing
and a retry of the same file imports each good row exactly once (unchanged rows stay as they are).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from typing import IO, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hexcast.core import strictjson
from hexcast.core.db import Conn, refresh_stats
from hexcast.core.errors import InvalidInput
from hexcast.core.instants import PastInstant
from hexcast.core.pgtext import PG_TEXT, PgText, pg_text_problem
from targeting.models import normalize_phone, validate_time_zone
from targeting.segments import Interest, cell_ancestors

__all__ = ["ImportReport", "ImportRow", "RowError", "import_rows", "parse_csv", "parse_json"]

MAX_REPORTED_ERRORS = 1000
_COPY_BATCH = 10_000
_COLUMNS = ("line", "user_id", "phone", "time_zone", "interests", "first_name", "last_name",
            "consent_at", "consent_source", "consent_text", "lat", "lng", "h3_cells", "last_visit_at")
Name = Annotated[str, Field(max_length=100), PG_TEXT]


class ImportRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: Annotated[str, Field(min_length=1, max_length=128), PG_TEXT]
    phone: PgText
    time_zone: PgText | None = None
    interests: list[Interest] = Field(default_factory=list, max_length=100)
    first_name: Name | None = None
    last_name: Name | None = None
    consent_at: PastInstant | None = None
    consent_source: Annotated[str, Field(max_length=200), PG_TEXT] | None = None
    consent_text: Annotated[str, Field(max_length=2000), PG_TEXT] | None = None
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    last_visit_at: PastInstant | None = None

    _phone = field_validator("phone")(normalize_phone)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return validate_time_zone(value) if value else None

    @model_validator(mode="after")
    def _pairs(self) -> ImportRow:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("lat and lng go together")
        return self


class RowError(BaseModel):
    line: int
    field: str | None
    message: str


class ImportReport(BaseModel):
    received: int = Field(description="Data rows read")
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[RowError] = Field(description=f"The first {MAX_REPORTED_ERRORS} rejected rows")
    profiles_published: bool = Field(
        default=False,
        description="Changed recipients reached the profiles topic; if not, run `hexcast catalog sync`",
    )


def _csv_value(key: str, value: str | None) -> Any:
    if value is None or value.strip() == "":
        return [] if key == "interests" else None
    if key == "interests":
        return [v.strip() for v in value.replace(";", "|").split("|") if v.strip()]
    return value


def parse_csv(fh: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, fields) per data row; a header without user_id and phone raises InvalidInput."""
    reader = csv.DictReader(fh)
    header = reader.fieldnames or []
    missing = {"user_id", "phone"} - set(header)
    if missing:
        raise InvalidInput(f"CSV header lacks {', '.join(sorted(missing))}", field="header")
    for row in reader:
        if None in row:
            yield reader.line_num, "more values than header columns"
            continue
        yield reader.line_num, {k: _csv_value(k, v) for k, v in row.items()}


def parse_json(fh: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, fields) per object of NDJSON (one per line) or of a JSON array (line = index+1)."""
    first = fh.read(1)
    while first.isspace():
        first = fh.read(1)
    if first == "[":
        try:
            items = strictjson.loads(first + fh.read())
        except strictjson.MalformedJSON as exc:
            raise InvalidInput(f"body is not valid JSON: {exc}", field="body") from None
        for n, item in enumerate(items, start=1):
            yield n, item if isinstance(item, dict) else "not a JSON object"
        return
    for n, line in enumerate(io.StringIO(first + fh.read()) if first else [], start=1):
        if not line.strip():
            continue
        try:
            item = strictjson.loads(line)
        except strictjson.MalformedJSON as exc:
            yield n, f"invalid JSON: {exc.reason}"
            continue
        yield n, item if isinstance(item, dict) else "not a JSON object"


class _Collector:
    """Validates rows, finds duplicates inside the file, and collects errors and COPY records."""

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution
        self.errors: list[RowError] = []
        self.rejected = 0
        self.received = 0
        self._users: dict[str, int] = {}
        self._phones: dict[str, int] = {}

    def error(self, line: int, field: str | None, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line=line, field=field, message=message))

    def record(self, line: int, raw: dict[str, Any] | str) -> tuple[Any, ...] | None:
        self.received += 1
        if isinstance(raw, str):
            self.error(line, None, raw)
            return None
        for key in raw:  # a column name PostgreSQL could not store cannot be answered as text
            problem = pg_text_problem(key)
            if problem is not None:
                self.error(line, ascii(key), f"column name {problem}")
                return None
        try:
            row = ImportRow.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            self.error(line, ".".join(str(p) for p in first["loc"]) or None, first["msg"])
            return None
        for key, seen in (("user_id", self._users), ("phone", self._phones)):
            value = getattr(row, key)
            if value in seen:
                self.error(line, key, f"duplicate {key} (first on line {seen[value]})")
                return None
        self._users[row.user_id], self._phones[row.phone] = line, line
        located = row.lat is not None and row.lng is not None
        cells = cell_ancestors(row.lat or 0.0, row.lng or 0.0, self.resolution) if located else []
        return (line, row.user_id, row.phone, row.time_zone, row.interests, row.first_name,
                row.last_name, row.consent_at, row.consent_source, row.consent_text, row.lat, row.lng,
                cells, row.last_visit_at)


_UPSERT = """
WITH up AS (
    INSERT INTO recipients AS r (tenant_id, user_id, phone, time_zone, interests, first_name,
        last_name, consent_at, consent_source, consent_text, lat, lng, h3_cells, last_visit_at)
    SELECT $1, user_id, phone, time_zone, interests, first_name, last_name, consent_at,
        consent_source, consent_text, lat, lng, h3_cells, last_visit_at FROM import_rows
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET phone = EXCLUDED.phone,
        time_zone = EXCLUDED.time_zone, interests = EXCLUDED.interests,
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        consent_at = EXCLUDED.consent_at, consent_source = EXCLUDED.consent_source,
        consent_text = EXCLUDED.consent_text, lat = EXCLUDED.lat, lng = EXCLUDED.lng,
        h3_cells = EXCLUDED.h3_cells, last_visit_at = EXCLUDED.last_visit_at, updated_at = now()
    WHERE (r.phone, r.time_zone, r.interests, r.first_name, r.last_name, r.consent_at,
        r.consent_source, r.consent_text, r.lat, r.lng, r.last_visit_at)
        IS DISTINCT FROM (EXCLUDED.phone, EXCLUDED.time_zone, EXCLUDED.interests,
        EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.consent_at, EXCLUDED.consent_source,
        EXCLUDED.consent_text, EXCLUDED.lat, EXCLUDED.lng, EXCLUDED.last_visit_at)
    RETURNING r.id, (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated,
    coalesce(array_agg(id ORDER BY id), '{}') AS ids
FROM up
"""


def _next_batch(rows: Iterator[tuple[int, dict[str, Any] | str]], c: _Collector) -> list[tuple[Any, ...]]:
    """Read and validate rows until a COPY batch is full or the input ends (runs in a thread)."""
    batch: list[tuple[Any, ...]] = []
    for line, raw in rows:
        record = c.record(line, raw)
        if record is not None:
            batch.append(record)
        if len(batch) >= _COPY_BATCH:
            break
    return batch


async def _copy(conn: Conn, rows: Iterator[tuple[int, dict[str, Any] | str]], c: _Collector) -> None:
    """Validation (CPU-bound: phonenumbers, pydantic, H3) runs off the event loop, batch by batch."""
    while batch := await asyncio.to_thread(_next_batch, rows, c):
        await conn.copy_records_to_table("import_rows", records=batch, columns=_COLUMNS)


async def import_rows(
    conn: Conn, *, tenant_id: int, rows: Iterator[tuple[int, dict[str, Any] | str]], resolution: int
) -> tuple[ImportReport, list[int]]:
    """Validate, COPY and upsert in one transaction; phones owned by another user are rejected.
    Returns the report and the ids of inserted or changed recipients."""
    c = _Collector(resolution)
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE import_rows (line int, user_id text, phone text, time_zone text,"
            " interests text[], first_name text, last_name text, consent_at timestamptz,"
            " consent_source text, consent_text text, lat double precision, lng double precision,"
            " h3_cells text[], last_visit_at timestamptz) ON COMMIT DROP"
        )
        await _copy(conn, rows, c)
        clashes = await conn.fetch(
            "DELETE FROM import_rows i USING recipients r WHERE r.tenant_id = $1 AND r.phone = i.phone"
            " AND r.user_id <> i.user_id RETURNING i.line", tenant_id,
        )
        for clash in sorted(r["line"] for r in clashes):
            c.error(clash, "phone", "phone belongs to another recipient")
        good = await conn.fetchval("SELECT count(*) FROM import_rows")
        counts = await conn.fetchrow(_UPSERT, tenant_id)
    await refresh_stats(conn, table="recipients")  # a large import: audiences plan on it next
    inserted, updated = (counts["inserted"], counts["updated"]) if counts else (0, 0)
    report = ImportReport(received=c.received, inserted=inserted, updated=updated,
                          unchanged=good - inserted - updated, rejected=c.rejected,
                          errors=sorted(c.errors, key=lambda e: e.line))
    return report, list(counts["ids"]) if counts else []
