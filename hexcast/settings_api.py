"""Routes (admin scope): a tenant's own sending settings, never looser than the law.

``GET/PATCH /v1/tenant/settings``: the HELP reply text, the longest message in segments, a
sending window inside the legal one (``sender.quiet.DEFAULT_WINDOW``, recipient-local; numbers
in stricter states keep their stricter end whatever the tenant says) and per-recipient caps at
most the sender's defaults (``HEXCAST_SENDER_CAP_PER_DAY`` / ``_PER_24H``). A wider window or a
looser cap is a 422 naming the field and the limit. ``sender_ids``: the tenant's own numbers or
brand name, sent from on routes whose account may use them (``tenant_senders`` in the routes
file; on the others the route's ``sender_id`` / ``sender_pool``), each recipient always the same.
``reserve_caps`` (on by default): campaigns with ``priority: reserved`` reserve their audience's
daily cap slot for their send day, so geo offers and other campaigns leave it to them.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hexcast.core.errors import InvalidInput
from hexcast.core.instants import WallClock
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.scopes import AdminTenant
from hexcast.core.settings import Settings
from hexcast.core.tenant_settings import read_settings, update_settings
from hexcast.core.web import PoolDep, SettingsDep
from sender.models import SenderNumber
from sender.quiet import DEFAULT_WINDOW, Window
from targeting.models import unset_default

__all__ = ["SendWindow", "TenantSettingsPublic", "TenantSettingsUpdate", "check_stricter", "router"]

router = APIRouter(prefix="/v1/tenant", tags=["tenant"])

HelpText = Annotated[str, Field(min_length=1, max_length=320), PG_TEXT]
_RESERVE_CAPS = ("Campaigns with priority reserved reserve each recipient's daily cap slot for"
                 " their send day: geo offers and other campaigns see it as used (on by default)")
Cap = Annotated[int, Field(ge=1, le=1000)]


class SendWindow(BaseModel):
    """Recipient-local hours marketing may go out (outside them: quiet hours); no wrap."""

    model_config = ConfigDict(extra="forbid")

    start: WallClock
    end: WallClock = Field(description="After start: the window does not pass midnight")

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("end must be after start (the window cannot pass midnight)")
        return end


class Caps(BaseModel):
    per_day: int
    per_24h: int


class TenantSettingsPublic(BaseModel):
    help_text: str
    max_segments: int
    send_window: SendWindow | None = Field(description="null: the legal window")
    cap_per_day: int | None = Field(description="null: the default (default_caps)")
    cap_per_24h: int | None = Field(description="null: the default (default_caps)")
    sender_ids: list[str] | None = Field(
        description="The tenant's own sender ids; null: the routes' own")
    reserve_caps: bool = Field(description=_RESERVE_CAPS)
    legal_window: SendWindow = Field(description="The widest window allowed")
    default_caps: Caps = Field(description="The loosest caps allowed")


class TenantSettingsUpdate(BaseModel):
    """What changes (fields left out keep their value). ``null`` puts ``send_window`` back to
    the legal window and a cap back to its default; ``help_text``, ``max_segments`` and
    ``reserve_caps`` cannot be null."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    help_text: HelpText = Field(default="", json_schema_extra=unset_default)
    max_segments: Annotated[int, Field(ge=1, le=10)] = Field(default=6, json_schema_extra=unset_default)
    send_window: SendWindow | None = None
    cap_per_day: Cap | None = None
    cap_per_24h: Cap | None = None
    sender_ids: Annotated[list[SenderNumber] | None, Field(min_length=1, max_length=10)] = None
    reserve_caps: bool = Field(default=True, description=_RESERVE_CAPS,
                               json_schema_extra=unset_default)

    def columns(self) -> dict[str, Any]:
        """Column → new value, for the fields the request named."""
        named = self.model_dump(include=self.model_fields_set - {"send_window"})
        if "send_window" in self.model_fields_set:
            window = self.send_window
            named["quiet_start"] = window.start if window else None
            named["quiet_end"] = window.end if window else None
        return named


def check_stricter(update: TenantSettingsUpdate, *, legal: Window, caps: Caps) -> None:
    """:class:`InvalidInput` naming the first field looser than the law or the defaults."""
    window = update.send_window
    legal_text = f"{legal.start:%H:%M}-{legal.end:%H:%M}"
    if window is not None and window.start < legal.start:
        raise InvalidInput(f"send_window.start {window.start:%H:%M} is outside the legal window"
                           f" {legal_text}: a tenant may only narrow it", field="send_window.start")
    if window is not None and window.end > legal.end:
        raise InvalidInput(f"send_window.end {window.end:%H:%M} is outside the legal window"
                           f" {legal_text}: a tenant may only narrow it", field="send_window.end")
    for field, value, default in (("cap_per_day", update.cap_per_day, caps.per_day),
                                  ("cap_per_24h", update.cap_per_24h, caps.per_24h)):
        if value is not None and value > default:
            raise InvalidInput(f"{field} {value} is looser than the default {default}: a tenant"
                               " may only make caps stricter", field=field)


def _caps(settings: Settings) -> Caps:
    return Caps(per_day=settings.sender_cap_per_day, per_24h=settings.sender_cap_per_24h)


def _public(row: Any, settings: Settings) -> TenantSettingsPublic:
    start: time | None = row["quiet_start"]
    end: time | None = row["quiet_end"]
    return TenantSettingsPublic(
        help_text=row["help_text"], max_segments=row["max_segments"],
        send_window=SendWindow(start=start, end=end) if start and end else None,
        cap_per_day=row["cap_per_day"], cap_per_24h=row["cap_per_24h"],
        sender_ids=row["sender_ids"], reserve_caps=row["reserve_caps"],
        legal_window=SendWindow(start=DEFAULT_WINDOW.start, end=DEFAULT_WINDOW.end),
        default_caps=_caps(settings),
    )


@router.get("/settings", response_model=TenantSettingsPublic)
async def get_settings(tenant: AdminTenant, pool: PoolDep, settings: SettingsDep) -> TenantSettingsPublic:
    """The tenant's settings, with the legal window and default caps they may only narrow."""
    async with pool.acquire() as conn:
        row = await read_settings(conn, tenant_id=tenant.id)
    return _public(row, settings)


@router.patch("/settings", response_model=TenantSettingsPublic)
async def patch_settings(body: TenantSettingsUpdate, tenant: AdminTenant, pool: PoolDep,
                         settings: SettingsDep) -> TenantSettingsPublic:
    """Change some settings; a window wider than the legal one or a looser cap is a 422."""
    check_stricter(body, legal=DEFAULT_WINDOW, caps=_caps(settings))
    async with pool.acquire() as conn:
        row = await update_settings(conn, tenant_id=tenant.id, values=body.columns())
    return _public(row, settings)
