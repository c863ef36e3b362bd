"""The console's access rules over plain HTTP, against a real api process, PostgreSQL and Redis:
signing in (operator token, a tenant's admin key; not another scope's key, not a wrong one,
not without the sign-in form's token), the session cookie's attributes, CSRF on every form
(403 without or with a wrong token), a tenant seeing, searching and acting only on its own
campaigns and messages (another tenant's answer 404, as missing ones do), operator-only
route pages, and sessions ending at sign-out and when the key is revoked. The operator's own
controls (a new tenant with its first admin key, requeueing dead letters, resolving unknown
messages): confirmed, CSRF-checked, refused to a tenant's session (404), done in PostgreSQL and
in the operator audit log."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.responses import Response

from hexcast.console.access import keep_session
from hexcast.core.bus import Bus
from hexcast.core.deadletter import dead_letter
from hexcast.core.scopes import Scope
from hexcast.core.tenants import issue_key
from hexcast.testing import (
    OPERATOR_TOKEN,
    TenantRef,
    connected,
    console_session,
    fetch_rows,
    form_token,
    make_settings,
    make_tenant,
)
from sender import repo
from sender.models import Lane, MessageState, SendBatch, SendRequest
from tests.integration.apiproc import RunningApi, published, running_api

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


def _signed_in(api: RunningApi, credential: str) -> AbstractContextManager[tuple[httpx.Client, str]]:
    """A client with a console session, and the session's CSRF token."""
    return console_session(api.url, credential)


def test_signing_in_takes_the_form_token_and_a_right_credential(api: RunningApi) -> None:
    tenant = _tenant(api, "console-in")
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert client.get("/console").status_code == 303  # to the sign-in form
        assert client.get("/console/fragments/overview").status_code == 401
        form = client.get("/console/login")
        assert form.status_code == 200
        assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
        token = form_token(form.text, "login_token")
        refused = client.post("/console/login", data={"credential": OPERATOR_TOKEN})
        assert refused.status_code == 403  # no form token: a cross-site sign-in
        wrong = client.post("/console/login", data={"credential": "not-the-operator-token",
                                                    "login_token": token})
        assert wrong.status_code == 401
        assert "wrong operator token" in wrong.text
        assert "hexcast_console=" not in wrong.headers.get("set-cookie", "")
    send_key = asyncio.run(_key(api, tenant.id, Scope.SEND))
    with httpx.Client(base_url=api.url, timeout=30) as client:
        token = form_token(client.get("/console/login").text, "login_token")
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


def _audit(api: RunningApi, action: str, target: str) -> list[Any]:
    return asyncio.run(fetch_rows(
        api.settings.database_url, "SELECT actor, reason, detail::text AS detail FROM operator_actions"
        " WHERE action = $1 AND target = $2", action, target))


def _tenant_refused(client: httpx.Client, csrf: str, gets: tuple[str, ...], post: str,
                    form: dict[str, str]) -> None:
    """A tenant's session: no link to the operator's controls, and each answers 404."""
    assert 'href="/console/dlq' not in client.get("/console").text
    for path in gets:
        assert client.get(path).status_code == 404, path
    assert client.post(post, data={**form, "csrf": csrf}).status_code == 404


def test_the_operator_creates_a_tenant_whose_first_key_is_shown_once(api: RunningApi) -> None:
    name, why = f"console-new-{secrets.token_hex(4)}", "brand signed the contract"
    form = {"action": "create", "name": name, "reason": why}
    with _signed_in(api, _tenant(api, "console-nt").api_key) as (client, csrf):
        _tenant_refused(client, csrf, ("/console/tenants/new", f"/console/tenants/confirm?name={name}"),
                        "/console/tenants", form)
    with _signed_in(api, OPERATOR_TOKEN) as (client, csrf):
        assert 'href="/console/tenants/new"' in client.get("/console").text
        assert client.get("/console/tenants/new").status_code == 200
        confirm = client.get("/console/tenants/confirm", params={"name": name, "reason": why})
        assert confirm.status_code == 200
        assert f'name="name" value="{name}"' in confirm.text
        assert form_token(confirm.text, "csrf") == csrf
        assert client.get("/console/tenants/confirm", params={"name": " "}).status_code == 422
        assert client.post("/console/tenants", data=form).status_code == 403
        assert client.post("/console/tenants", data={**form, "reason": "", "csrf": csrf}).status_code == 422
        created = client.post("/console/tenants", data={**form, "csrf": csrf})
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"
        found = re.search(r'id="api-key">(hx_[^<]+)<', created.text)
        assert found is not None, created.text
        key = found.group(1)
        taken = client.post("/console/tenants", data={**form, "csrf": csrf})
        assert taken.status_code == 409
        assert "already exists" in taken.text
        assert key not in taken.text
    [row] = asyncio.run(fetch_rows(api.settings.database_url, "SELECT id FROM tenants WHERE name = $1", name))
    keys = httpx.get(f"{api.url}/v1/keys", headers={"X-API-Key": key}, timeout=30)
    assert keys.status_code == 200, keys.text  # the new tenant's admin key works against the API
    [entry] = _audit(api, "tenant.create", f"tenant:{row['id']}")
    assert (entry["actor"], entry["reason"]) == ("console:operator", why)
    assert key not in entry["detail"]


def _messages(api: RunningApi, tenant: TenantRef, names: list[str], to: MessageState) -> list[str]:
    """Messages taken by a sender and left ``to`` (failed, unknown) by route ``sim``; their keys."""
    async def run() -> list[str]:
        async with connected(api.settings.database_url) as conn:
            rows = await conn.fetch(
                "INSERT INTO messages (message_key, client_ref, tenant_id, lane, phone, body, provider)"
                " SELECT k, k, $1, 'bulk', '+16175559' || lpad(i::text, 3, '0'), 'hi', 'sim'"
                " FROM unnest($2::text[]) WITH ORDINALITY AS u(k, i) RETURNING id", tenant.id, names)
            ids = [r["id"] for r in rows]
            await repo.transition(conn, ids=ids, to=MessageState.SENDING, reason=None, actor="test",
                                  from_states=[MessageState.QUEUED], attempts=1)
            await repo.transition(conn, ids=ids, to=to, reason="connection lost", actor="test",
                                  from_states=[MessageState.SENDING])
        return names

    return asyncio.run(run())


def _dead_letters(api: RunningApi, letters: list[tuple[TenantRef, str]]) -> None:
    """One dead letter of ``send.bulk`` per (tenant, message key), as a sender writes them."""
    async def run() -> None:
        bus = Bus(api.settings)
        await bus.start()
        try:
            for tenant, key in letters:
                batch = SendBatch(lane=Lane.BULK, created_at=datetime.now(UTC), items=[
                    SendRequest(message_key=key, tenant_id=tenant.id, phone="+16175559001", body="hi")])
                await bus.publish("send.dlq", key, dead_letter(
                    api.settings.topic("send.bulk"), key.encode(), "provider sim: gave up after 2 attempts",
                    batch.encode()))
        finally:
            await bus.stop()

    asyncio.run(run())


def _states(api: RunningApi, keys: list[str]) -> list[str]:
    return [r["state"] for r in asyncio.run(fetch_rows(
        api.settings.database_url, "SELECT state::text FROM messages WHERE message_key = ANY($1::text[])"
        " ORDER BY array_position($1::text[], message_key)", keys))]


def test_the_operator_requeues_dead_letters_of_a_tenant_and_then_of_a_topic(api: RunningApi) -> None:
    first, second = _tenant(api, "console-dl1"), _tenant(api, "console-dl2")
    tag = secrets.token_hex(4)
    keys = _messages(api, first, [f"dlq-a-{tag}"], MessageState.FAILED) + _messages(
        api, second, [f"dlq-b-{tag}"], MessageState.FAILED)
    _dead_letters(api, [(first, keys[0]), (second, keys[1])])  # offsets 0 and 1
    with _signed_in(api, first.api_key) as (client, csrf):
        _tenant_refused(client, csrf, ("/console/dlq", "/console/dlq/confirm?offset=0"),
                        "/console/dlq/requeue", {"action": "requeue", "offset": "0", "reason": "x"})
    with _signed_in(api, OPERATOR_TOKEN) as (client, csrf):
        listed = client.get("/console/dlq")
        assert listed.status_code == 200, listed.text
        assert 'data-topic="send.bulk"' in listed.text
        assert "gave up after 2 attempts" in listed.text
        assert {'data-offset="0"', 'data-offset="1"'} <= set(re.findall(r'data-offset="\d+"', listed.text))
        only = client.get("/console/dlq", params={"tenant": first.id}).text
        assert re.findall(r'data-offset="\d+"', only) == ['data-offset="0"']
        confirm = client.get("/console/dlq/confirm", params={"offset": 0})
        assert confirm.status_code == 200
        assert 'name="offset" value="0"' in confirm.text
        form = {"action": "requeue", "offset": "0", "reason": "carrier fixed"}
        assert client.post("/console/dlq/requeue", data=form).status_code == 403
        no_letter = client.post("/console/dlq/requeue", data={**form, "offset": "7", "csrf": csrf})
        assert no_letter.status_code == 422
        assert "no dead letter at offset 7" in no_letter.text
        done = client.post("/console/dlq/requeue", data={**form, "csrf": csrf})
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/console/dlq?letters=1&messages=1&skipped=0"
        assert _states(api, keys) == ["queued", "failed"]
        everyone = client.get("/console/dlq/confirm", params={"lane": "bulk"})
        assert 'name="lane" value="bulk"' in everyone.text
        assert "#1 from" in everyone.text
        assert "#0 from" not in everyone.text  # requeued already
        rest = client.post("/console/dlq/requeue", data={"action": "requeue", "lane": "bulk",
                                                        "reason": "the rest too", "csrf": csrf})
        assert rest.status_code == 303, rest.text
    assert _states(api, keys) == ["queued", "queued"]
    assert published(api.settings, "send.bulk") == 2  # each letter's record went back to its lane
    [entry] = _audit(api, "dlq.requeue", "dlq:0")
    assert (entry["actor"], entry["reason"]) == ("console:operator", "carrier fixed")
    assert [e["reason"] for e in _audit(api, "dlq.requeue", "dlq:1")] == ["the rest too"]
    # No sender runs here: leave nothing queued in the session's database (a later module's
    # sender would sweep these two into its own provider; lane-wide walks would see them)
    asyncio.run(fetch_rows(api.settings.database_url, "UPDATE messages SET state = 'failed',"
                           " reason = 'test over' WHERE message_key = ANY($1::text[]) RETURNING id",
                           keys))


def test_the_operator_resolves_an_unknown_message_after_confirming(api: RunningApi) -> None:
    tenant = _tenant(api, "console-unk")
    [key] = _messages(api, tenant, [f"unknown-{secrets.token_hex(4)}"], MessageState.UNKNOWN)
    form = {"action": "delivered", "key": key, "reason": "DLR in the portal", "provider_status": "DELIVRD"}
    with _signed_in(api, tenant.api_key) as (client, csrf):
        _tenant_refused(client, csrf, ("/console/unknown", f"/console/unknown/confirm?key={key}"),
                        "/console/unknown/resolve", form)
        assert "resolve-delivered" not in client.get("/console/messages", params={"q": key}).text
    with _signed_in(api, OPERATOR_TOKEN) as (client, csrf):
        assert f'data-unknown="{key}"' in client.get("/console/unknown", params={"tenant": tenant.id}).text
        assert "resolve-delivered" in client.get("/console/messages", params={"q": key}).text
        confirm = client.get("/console/unknown/confirm", params={"key": key, "action": "delivered"})
        assert confirm.status_code == 200
        assert "connection lost" in confirm.text
        assert client.post("/console/unknown/resolve", data=form).status_code == 403
        done = client.post("/console/unknown/resolve", data={**form, "csrf": csrf})
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"/console/unknown?done=delivered&key={key}"
        again = client.post("/console/unknown/resolve", data={**form, "csrf": csrf})
        assert again.status_code == 409  # only an unknown message is resolved
    assert _states(api, [key]) == ["delivered"]
    [entry] = _audit(api, "message.resolve", f"message:{key}")
    assert (entry["actor"], entry["reason"]) == ("console:operator", "DLR in the portal")
    assert '"provider_status": "DELIVRD"' in entry["detail"]
