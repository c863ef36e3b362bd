"""The console's access rules over plain HTTP, against a real api process, PostgreSQL and Redis:
signing in (operator token, a tenant's admin key; not another scope's key, not a wrong one,
not without the sign-in form's token), the session cookie's attributes, CSRF on every form
(403 without or with a wrong token), a tenant seeing, searching and acting only on its own
campaigns and messages (another tenant's answer 404, as missing ones do), operator-only
route pages, and sessions ending at sign-out and when the key is revoked."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.responses import Response

from hexcast.console.access import keep_session
from hexcast.core.scopes import Scope
from hexcast.core.tenants import issue_key
from hexcast.testing import OPERATOR_TOKEN, TenantRef, connected, fetch_rows, make_settings, make_tenant
from tests.integration.apiproc import RunningApi, running_api

PHONE_A, PHONE_B = "+16175550101", "+16175550102"  # this file's numbers: +1617555...


@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[RunningApi]:
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("console")) as running:
        yield running


def _tenant(api: RunningApi, prefix: str) -> TenantRef:
    return asyncio.run(make_tenant(api.settings.database_url, prefix=prefix))


def _campaign(api: RunningApi, tenant: TenantRef, name: str) -> dict[str, Any]:
    run_at = (datetime.now(UTC) + timedelta(days=2)).replace(tzinfo=None, microsecond=0)
    answer = httpx.post(f"{api.url}/v1/campaigns", headers={"X-API-Key": tenant.api_key}, timeout=30,
                        json={"name": name, "body": "Hello from the console test",
                              "segment": {"everyone": True}, "run_at": run_at.isoformat(),
                              "time_zone": "UTC"})
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def _send(api: RunningApi, tenant: TenantRef, phone: str, reference: str) -> str:
    answer = httpx.post(f"{api.url}/v1/messages", timeout=30,
                        headers={"X-API-Key": tenant.api_key, "Idempotency-Key": reference},
                        json={"messages": [{"to": phone, "body": "Your order shipped",
                                            "client_reference": reference}]})
    assert answer.status_code == 202, answer.text
    key: str = answer.json()["messages"][0]["message_key"]
    return key


def _token(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found is not None, html[:2000]
    return found.group(1)


@contextmanager
def _signed_in(api: RunningApi, credential: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client with a console session, and the session's CSRF token."""
    with httpx.Client(base_url=api.url, timeout=30) as client:
        form = client.get("/console/login")
        signed = client.post("/console/login", data={"credential": credential,
                                                     "login_token": _token(form.text, "login_token")})
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == "/console"
        overview = client.get("/console")
        assert overview.status_code == 200, overview.text
        yield client, _token(overview.text, "csrf")


def test_signing_in_takes_the_form_token_and_a_right_credential(api: RunningApi) -> None:
    tenant = _tenant(api, "console-in")
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert client.get("/console").status_code == 303  # to the sign-in form
        assert client.get("/console/fragments/overview").status_code == 401
        form = client.get("/console/login")
        assert form.status_code == 200
        assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
        token = _token(form.text, "login_token")
        refused = client.post("/console/login", data={"credential": OPERATOR_TOKEN})
        assert refused.status_code == 403  # no form token: a cross-site sign-in
        wrong = client.post("/console/login", data={"credential": "not-the-operator-token",
                                                    "login_token": token})
        assert wrong.status_code == 401
        assert "wrong operator token" in wrong.text
        assert "hexcast_console=" not in wrong.headers.get("set-cookie", "")
    send_key = asyncio.run(_key(api, tenant.id, Scope.SEND))
    with httpx.Client(base_url=api.url, timeout=30) as client:
        token = _token(client.get("/console/login").text, "login_token")
        scoped = client.post("/console/login", data={"credential": send_key, "login_token": token})
        assert scoped.status_code == 401
        assert "admin-scoped" in scoped.text
    with _signed_in(api, OPERATOR_TOKEN) as (client, _):
        cookie = next(h for h in client.cookies.jar if h.name == "hexcast_console")
        assert cookie.path == "/console"
        assert not cookie.secure  # the api's public URL is http here
    with _signed_in(api, tenant.api_key) as (tenant_client, _):
        page = tenant_client.get("/console")
        assert tenant.name in page.text
        assert "every tenant" not in page.text  # no tenant filter for a tenant


async def _key(api: RunningApi, tenant_id: int, scope: Scope) -> str:
    async with connected(api.settings.database_url) as conn:
        return await issue_key(conn, tenant_id=tenant_id, scope=scope.value)


def test_the_session_cookie_is_httponly_strict_and_secure_behind_https(api: RunningApi) -> None:
    for url, secure in (("https://sms.example.com", True), ("http://127.0.0.1:8000", False)):
        response = Response()
        keep_session(response, make_settings(api.settings.broker_url or "", api.settings.database_url,
                                             api_public_url=url), "session-id")
        header = next(v for k, v in response.raw_headers if k == b"set-cookie").decode().lower()
        assert "httponly" in header
        assert "samesite=strict" in header
        assert "path=/console" in header
        assert ("secure" in header.split("; ")) is secure


def test_a_tenant_sees_searches_and_acts_on_its_own_campaigns_only(api: RunningApi) -> None:
    mine, other = _tenant(api, "console-a"), _tenant(api, "console-b")
    own = _campaign(api, mine, "Spring sale")
    theirs = _campaign(api, other, "Their secret launch")
    _send(api, mine, PHONE_A, "order-a-1")
    their_key = _send(api, other, PHONE_B, "order-b-1")
    with _signed_in(api, mine.api_key) as (client, csrf):
        overview = client.get("/console").text
        assert "Spring sale" in overview
        assert "Their secret launch" not in overview
        fragment = client.get("/console/fragments/overview")
        assert "Their secret launch" not in fragment.text
        assert client.get(f"/console/campaigns/{own['id']}").status_code == 200
        for path in (f"/console/campaigns/{theirs['id']}", f"/console/fragments/campaigns/{theirs['id']}",
                     f"/console/campaigns/{theirs['id']}/confirm?action=pause",
                     "/console/campaigns/999999999", "/console/routes/sim"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "Their secret launch" not in answer.text
        assert 'data-message="' not in client.get("/console/messages", params={"q": PHONE_B}).text
        assert 'data-message="' not in client.get("/console/messages", params={"q": their_key}).text
        assert 'data-message="' not in client.get("/console/messages", params={"q": "order-b-1"}).text
        found = client.get("/console/messages", params={"q": PHONE_A}).text
        assert found.count('data-message="') == 1
        assert "order-a-1" in found
        # forged forms: no CSRF token, a wrong one; then the right one on another's campaign
        action = f"/console/campaigns/{theirs['id']}/actions"
        form = {"action": "pause", "reason": "forged"}
        assert client.post(action, data=form).status_code == 403
        assert client.post(action, data={**form, "csrf": "x" * 43}).status_code == 403
        assert client.post(action, data={**form, "csrf": csrf}).status_code == 404
        assert client.post("/console/routes/sim/actions",
                           data={"action": "drain", "reason": "x", "csrf": csrf}).status_code == 404
        assert client.post(f"/console/campaigns/{own['id']}/actions",
                           data={"action": "pause", "reason": "", "csrf": csrf}).status_code == 422
        paused = client.post(f"/console/campaigns/{own['id']}/actions",
                             data={"action": "pause", "reason": "wrong offer text", "csrf": csrf})
        assert paused.status_code == 303
    states = {r["id"]: r["state"] for r in asyncio.run(fetch_rows(
        api.settings.database_url, "SELECT id, state FROM campaigns WHERE id = ANY($1::bigint[])",
        [own["id"], theirs["id"]]))}
    assert states == {own["id"]: "paused", theirs["id"]: "active"}
    audit = asyncio.run(fetch_rows(api.settings.database_url,
                                   "SELECT actor, action, reason FROM operator_actions WHERE target = $1",
                                   f"campaign:{own['id']}"))
    assert [(r["action"], r["reason"]) for r in audit] == [("campaign.pause", "wrong offer text")]
    assert audit[0]["actor"].startswith(f"console:tenant:{mine.id}:")


def test_the_operator_sees_every_tenant_and_filters_by_one(api: RunningApi) -> None:
    first, second = _tenant(api, "console-op1"), _tenant(api, "console-op2")
    _campaign(api, first, "First brand promo")
    _campaign(api, second, "Second brand promo")
    _send(api, second, PHONE_B, "order-op-2")
    with _signed_in(api, OPERATOR_TOKEN) as (client, csrf):
        everyone = client.get("/console").text
        assert "First brand promo" in everyone
        assert "Second brand promo" in everyone
        only = client.get("/console", params={"tenant": first.id}).text
        assert "First brand promo" in only
        assert "Second brand promo" not in only
        assert "metrics not connected" in everyone  # no HEXCAST_PROMETHEUS_URL here
        found = client.get("/console/messages", params={"q": PHONE_B}).text
        assert 'data-message="' in found
        route = client.get("/console/routes/sim")
        assert route.status_code == 200
        assert "Operator actions" in route.text
        assert client.post("/console/routes/sim/actions", data={"action": "drain", "reason": "x"}
                           ).status_code == 403
        out = client.post("/console/logout", data={"csrf": csrf})
        assert out.status_code == 303
        assert client.get("/console").status_code == 303  # signed out: the cookie is gone
    assert client.cookies.get("hexcast_console") is None


def test_a_session_ends_when_its_key_is_revoked_or_it_signs_out(api: RunningApi) -> None:
    tenant = _tenant(api, "console-rev")
    spare = asyncio.run(_key(api, tenant.id, Scope.ADMIN))
    with _signed_in(api, spare) as (client, _):
        cookie = client.cookies.get("hexcast_console")
        assert client.get("/console").status_code == 200
        [key_id] = [k["id"] for k in httpx.get(f"{api.url}/v1/keys", timeout=30,
                                               headers={"X-API-Key": tenant.api_key}).json()
                    if k["prefix"] == spare.split("_")[1]]
        revoked = httpx.delete(f"{api.url}/v1/keys/{key_id}", headers={"X-API-Key": tenant.api_key},
                               timeout=30)
        assert revoked.status_code == 200, revoked.text
        assert client.get("/console").status_code == 303
    stolen = httpx.get(f"{api.url}/console", cookies={"hexcast_console": cookie or ""}, timeout=30)
    assert stolen.status_code == 303
    with _signed_in(api, tenant.api_key) as (client, csrf):
        cookie = client.cookies.get("hexcast_console")
        assert client.post("/console/logout", data={"csrf": csrf}).status_code == 303
    replayed = httpx.get(f"{api.url}/console", cookies={"hexcast_console": cookie or ""}, timeout=30)
    assert replayed.status_code == 303  # the session row is gone, not just the cookie
