"""The api's HTTP boundary through a real uvicorn: body limits for every transfer encoding, error
answers that do not echo the body, strict content types, and the operator token on operator routes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.apiproc import RunningApi, memory_kb, published, running_api

LIMIT = 262_144
CHUNKED_TOTAL = 50 * 1024 * 1024
NOW = datetime.now(UTC).isoformat()
EVENT = {"event_id": "e1", "user_id": "u1", "lat": 41.88, "lng": -87.62, "ts": NOW}


@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("api"), max_body_bytes=LIMIT,
                     dlr_webhook_token="boundary-webhook-token") as running:
        yield running


@pytest.fixture
def client(api: RunningApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers={"X-API-Key": api.key}, timeout=60) as c:
        yield c


def test_a_chunked_body_over_the_limit_is_refused_as_it_streams_in(
    api: RunningApi, client: httpx.Client
) -> None:
    """No Content-Length: the 413 comes while the client is still sending, the rest is never
    read, and the api's memory does not grow with the body (it took 1.3 GB for 200 MB)."""
    Path(f"/proc/{api.child.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    before = memory_kb(api.child.pid, "VmRSS")
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"event_id": "e1", "user_id": "'
        for _ in range(CHUNKED_TOTAL // 65_536):
            sent += 65_536
            yield b"u" * 65_536

    response = client.post("/v1/visits", content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    assert response.json() == {"error": "PayloadTooLarge", "message": f"body exceeds {LIMIT} bytes"}
    assert sent < CHUNKED_TOTAL  # the client stopped: the api answered before the end
    assert memory_kb(api.child.pid, "VmHWM") - before < 50 * 1024
    assert client.get("/health").status_code == 200


def test_a_declared_length_over_the_limit_is_refused_before_any_body_is_sent(api: RunningApi) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    head = (f"POST /v1/visits HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {api.key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65_536):  # the api closes after answering
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"connection: close" in rest.lower()
    assert b'"PayloadTooLarge"' in rest


def test_the_import_route_has_its_own_larger_limit(client: httpx.Client) -> None:
    csv = b"user_id,phone\n" + b"x" * (LIMIT + 10_000) + b",+13125550100\n"
    response = client.post("/v1/recipients/import", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code != 413, response.text[:300]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/visits", {**EVENT, "user_id": "u" * 200_000}),
    ("/v1/stores", {"name": "n" * 200_000, "lat": 41.88, "lng": -87.62, "time_zone": "UTC",
                    "geofence": {"type": "circle", "radius_m": 50}}),
    ("/v1/visits", {"events": [{**EVENT, "event_id": str(i), "lat": "north" * 20} for i in range(1000)]}),
])
def test_a_validation_error_echoes_a_few_hundred_bytes_of_the_input(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text[:300]
    assert len(response.content) < 8_000, response.text[:300]
    assert "more characters cut" in response.text or "more errors" in response.text


def test_a_lone_surrogate_is_echoed_as_its_escape(client: httpx.Client) -> None:
    """JSON's "\\ud800" is a str Python cannot encode as UTF-8: echoed as is, the error answer
    itself failed."""
    response = client.post("/v1/visits", content=json.dumps({**EVENT, "user_id": "a\ud800b"}),
                           headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["input"] == "a\\ud800b"


def _visits_before_after(api: RunningApi, client: httpx.Client, content_type: str | None) -> tuple[int, int]:
    before = published(api.settings)
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/visits", content=httpx.Request("POST", "/", json=EVENT).content,
                           headers=headers)
    return response.status_code, published(api.settings) - before


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/json; charset=latin-1",
                                          "application/x-www-form-urlencoded"])
def test_visits_in_another_content_type_are_415_and_not_published(
    api: RunningApi, client: httpx.Client, content_type: str | None
) -> None:
    assert _visits_before_after(api, client, content_type) == (415, 0)


def test_visits_in_json_with_a_utf8_charset_are_published(api: RunningApi, client: httpx.Client) -> None:
    assert _visits_before_after(api, client, "application/json; charset=utf-8") == (202, 1)


@pytest.mark.parametrize(("path", "content_type", "content", "status"), [
    ("/v1/stores", "text/plain", b'{"name": "x"}', 415),
    ("/v1/recipients/import", "text/plain", b"user_id,phone\n", 415),
    ("/v1/recipients/import", "text/csv; charset=utf-8", b"user_id,phone\nu1,+13125550100\n", 200),
    ("/v1/webhooks/status", "application/json", b'{"MessageSid": "SM1", "MessageStatus": "delivered"}', 415),
    ("/v1/webhooks/status", "application/x-www-form-urlencoded; charset=utf-8",
     b"MessageSid=SM1&MessageStatus=delivered", 200),
    ("/v1/campaigns/999999999/pause", "text/plain", b"", 404),  # no body: nothing to check
    ("/v1/campaigns/999999999/preview", None, b"", 404),  # an optional body, left out
])
def test_each_route_takes_the_media_type_it_documents(
    client: httpx.Client, path: str, content_type: str | None, content: bytes, status: int
) -> None:
    headers = {"Authorization": "Bearer boundary-webhook-token"} if "webhooks" in path else {}
    if content_type:
        headers["content-type"] = content_type
    response = client.post(path, content=content, headers=headers)
    assert response.status_code == status, response.text
    if status == 415:
        assert response.json()["error"] == "UnsupportedMediaType"


@pytest.mark.parametrize("path", ["/v1/admin/audit"])
def test_operator_routes_answer_only_the_operator_token(api: RunningApi, client: httpx.Client,
                                                        path: str) -> None:
    """Every tenant's data (metrics are on each process's own port now, not the api's)."""
    assert client.get(path).status_code == 401  # a tenant key is not enough
    wrong = client.get(path, headers={"Authorization": "Bearer not-the-operator-token"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    right = client.get(path, headers={"Authorization": f"Bearer {api.settings.operator_token}"})
    assert right.status_code == 200
    assert isinstance(right.json(), list)
