"""A tenant's objects made through the public API: stores, promotions, recipients, templates,
campaigns and, if asked, an OTP message.

Made through HTTP as a customer would make them (not by SQL), so every row is as the api
stores it and every catalog record is published. Tests that sweep the api (each operation on
real ids) take the ids by the name of the path parameter or body field that takes them::

    with httpx.Client(base_url=api_url, headers={"X-API-Key": tenant.api_key}) as client:
        seeded = seed_objects(client, copies=2, otp_phone="+13125550199")
    seeded.first()["store_id"]        # "17": a path parameter value
    seeded.by_name()["campaign_id"]   # [21, 22]
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import Any

import httpx

__all__ = ["CONSENT", "SeededObjects", "created", "recipient_body", "seed_objects"]

CONSENT = {"at": "2026-01-01T00:00:00Z", "source": "app", "text": "Offers by SMS"}
"""The marketing consent record of every seeded recipient."""
RUN_AT = "2030-11-26T09:00:00"
"""Seeded campaigns run once, then: they stay active for any test run before it."""


@dataclass(frozen=True, slots=True)
class SeededObjects:
    """The ids :func:`seed_objects` made, each field named as the parameter that takes it;
    ``message_key`` is the OTP's, if one was sent."""

    store_id: tuple[int, ...]
    promotion_id: tuple[int, ...]
    user_id: tuple[str, ...]
    template_id: tuple[int, ...]
    campaign_id: tuple[int, ...]
    message_key: str | None = None

    def by_name(self) -> dict[str, list[Any]]:
        """Parameter name → every id made for it."""
        made = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: list(ids) if isinstance(ids, tuple) else [ids]
                for name, ids in made.items() if ids is not None}

    def first(self) -> dict[str, str]:
        """Parameter name → the first id made for it, as text (a path parameter value)."""
        return {name: str(ids[0]) for name, ids in self.by_name().items()}


def created(
    client: httpx.Client, path: str, body: dict[str, Any], *, idempotency_key: str | None = None
) -> dict[str, Any]:
    """POST ``body`` to ``path``; the object the api made (a 201 or 202 is required)."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code in (201, 202), (path, response.text)
    made: dict[str, Any] = response.json()
    return made


def recipient_body(user_id: str, phone: str) -> dict[str, Any]:
    """A recipient in Chicago interested in electronics, with a consent record."""
    return {"user_id": user_id, "phone": phone, "time_zone": "America/Chicago",
            "interests": ["electronics"], "consent": dict(CONSENT)}


def seed_objects(
    client: httpx.Client, *, copies: int = 1, tag: str = "seed", otp_phone: str | None = None
) -> SeededObjects:
    """``copies`` of each kind of object, through the api ``client`` speaks to (with a tenant
    key): store ``n`` near Chicago's Loop with a promotion, recipient ``<tag>-user-<n>``, a
    template and a one-shot campaign using it; then an OTP to ``otp_phone`` if given."""
    if copies < 1:
        raise ValueError(f"copies={copies}: at least one of each object")
    made: dict[str, list[Any]] = {}
    for n in range(copies):
        store = created(client, "/v1/stores", {
            "name": f"Store {n}", "lat": 41.88 + n / 100, "lng": -87.62, "time_zone": "America/Chicago",
            "geofence": {"type": "circle", "radius_m": 80}})
        promotion = created(client, "/v1/promotions", {
            "store_id": store["id"], "name": f"Promo {n}", "body": "20% off today",
            "interests": ["electronics"]})
        recipient = created(client, "/v1/recipients",
                            recipient_body(f"{tag}-user-{n}", f"+1312555{100 + n:04d}"))
        template = created(client, "/v1/templates", {"name": f"T{n}", "body": "Hi {first_name}"},
                           idempotency_key=_key(tag))
        campaign = created(client, "/v1/campaigns", {
            "name": f"C{n}", "template_id": template["id"], "segment": {"everyone": True},
            "run_at": RUN_AT, "time_zone": "America/Chicago"}, idempotency_key=_key(tag))
        for name, value in (("store_id", store["id"]), ("promotion_id", promotion["id"]),
                            ("user_id", recipient["user_id"]), ("template_id", template["id"]),
                            ("campaign_id", campaign["id"])):
            made.setdefault(name, []).append(value)
    otp: str | None = None
    if otp_phone is not None:
        otp = created(client, "/v1/messages/otp", {"phone": otp_phone, "body": "Your code is 123456"},
                      idempotency_key=_key(tag))["message_key"]
    return SeededObjects(
        store_id=tuple(made["store_id"]), promotion_id=tuple(made["promotion_id"]),
        user_id=tuple(made["user_id"]), template_id=tuple(made["template_id"]),
        campaign_id=tuple(made["campaign_id"]), message_key=otp)


def _key(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex}"
