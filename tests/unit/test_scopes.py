"""Scope rules and the tenant settings' "never looser" rule, without I/O."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexcast.core.errors import Forbidden, InvalidInput
from hexcast.core.scopes import Scope, allows, check_scope
from hexcast.core.tenants import Tenant
from hexcast.settings_api import Caps, SendWindow, TenantSettingsUpdate, check_stricter
from sender.quiet import DEFAULT_WINDOW

scopes = st.sampled_from(list(Scope))
CAPS = Caps(per_day=3, per_24h=5)


@given(scopes)
def test_admin_may_do_everything(needed: Scope) -> None:
    assert allows(Scope.ADMIN, needed)


@given(scopes, scopes)
def test_other_scopes_only_their_own_routes(held: Scope, needed: Scope) -> None:
    if held is not Scope.ADMIN:
        assert allows(held, needed) == (held is needed)


def test_an_ingest_key_cannot_send_or_read_recipients() -> None:
    for needed in (Scope.SEND, Scope.MARKETER, Scope.ADMIN):
        assert not allows(Scope.INGEST, needed)
    assert not allows(Scope.MARKETER, Scope.ADMIN)
    assert not allows(Scope.SEND, Scope.MARKETER)


def test_a_wrong_scope_is_forbidden_naming_the_scope_needed() -> None:
    tenant = Tenant(id=1, name="acme", scope="ingest", key_id=7)
    with pytest.raises(Forbidden, match="'marketer'"):
        check_scope(tenant, Scope.MARKETER)
    assert check_scope(tenant, Scope.INGEST) is tenant


minutes = st.integers(min_value=0, max_value=24 * 60 - 1).map(lambda m: time(m // 60, m % 60))


@given(minutes, minutes)
def test_a_window_is_accepted_exactly_when_inside_the_legal_one(start: time, end: time) -> None:
    if start >= end:
        return  # the model refuses it before this rule
    update = TenantSettingsUpdate(send_window=SendWindow(start=start, end=end))
    inside = DEFAULT_WINDOW.start <= start and end <= DEFAULT_WINDOW.end
    if inside:
        check_stricter(update, legal=DEFAULT_WINDOW, caps=CAPS)
    else:
        with pytest.raises(InvalidInput, match="legal window 08:00-21:00") as refused:
            check_stricter(update, legal=DEFAULT_WINDOW, caps=CAPS)
        assert refused.value.field in ("send_window.start", "send_window.end")


@given(st.integers(min_value=1, max_value=1000), st.integers(min_value=1, max_value=1000))
def test_caps_are_accepted_exactly_when_not_looser(per_day: int, per_24h: int) -> None:
    update = TenantSettingsUpdate(cap_per_day=per_day, cap_per_24h=per_24h)
    if per_day <= CAPS.per_day and per_24h <= CAPS.per_24h:
        check_stricter(update, legal=DEFAULT_WINDOW, caps=CAPS)
    else:
        with pytest.raises(InvalidInput, match="looser than the default"):
            check_stricter(update, legal=DEFAULT_WINDOW, caps=CAPS)


def test_a_patch_changes_only_the_fields_it_names() -> None:
    assert TenantSettingsUpdate(cap_per_day=2).columns() == {"cap_per_day": 2}
    cleared = TenantSettingsUpdate.model_validate({"send_window": None}).columns()
    assert cleared == {"quiet_start": None, "quiet_end": None}
    with pytest.raises(ValueError, match="after start"):
        SendWindow(start=time(20), end=time(9))
