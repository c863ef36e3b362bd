"""hexcast's own JSON API (``/v1/batches`` or ``/v1/messages``, bearer token, lookup by client
reference) and its receipts: JSON batches, or one Twilio-like form per message in single mode."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from providersim.ledger import MAX_BATCH, MessageIn, Sim, respond

__all__ = ["UNDELIVERABLE_CODE", "BatchIn", "callback_form", "callbacks", "router"]


UNDELIVERABLE_CODE = "30003"
"""Twilio's 'unreachable destination handset', what the simulator reports for a failed one."""


def callback_form(*, provider_message_id: str, status: str, to: str) -> dict[str, str]:
    """The form a single-message (Twilio-like) provider posts for a message's final state."""
    form = {"MessageSid": provider_message_id, "To": to,
            "MessageStatus": "delivered" if status == "delivered" else "undelivered"}
    if status != "delivered":
        form["ErrorCode"] = UNDELIVERABLE_CODE
    return form

class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_BATCH)]


def _single_response(result: dict[str, Any]) -> JSONResponse:
    return JSONResponse(result, status_code=400 if result["status"] == "rejected" else 201)


def router(sim: Sim) -> APIRouter:
    async def auth(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization != f"Bearer {sim.config.token}":
            raise HTTPException(status_code=401, detail="unauthorized")

    router = APIRouter(prefix="/v1", dependencies=[Depends(auth)])

    # gate() answers 503/429 itself; otherwise the messages are ledgered, then answered.
    async def post_batch(batch: BatchIn) -> Response:
        denied = sim.gate(len(batch.messages))
        if denied is not None:
            return await respond(sim, denied)
        results = sim.accept(batch.messages)
        return await respond(sim, sim.garbled_answer() or JSONResponse({"results": results}))

    async def post_message(msg: MessageIn) -> Response:
        denied = sim.gate(1)
        if denied is not None:
            return await respond(sim, denied)
        result = sim.accept([msg])[0]
        return await respond(sim, sim.garbled_answer() or _single_response(result))

    async def by_ref(client_ref: str) -> Response:
        rec = sim.by_ref.get(client_ref) if sim.config.lookup else None
        if rec is None:
            return await respond(sim, JSONResponse({"error": "not_found"}, status_code=404))
        return await respond(sim, JSONResponse({**rec.ledger_item(), "status": rec.status}))

    if sim.config.mode == "batch":
        router.add_api_route("/batches", post_batch, methods=["POST"])
    else:
        router.add_api_route("/messages", post_message, methods=["POST"], status_code=201)
    router.add_api_route("/messages/by-ref/{client_ref}", by_ref, methods=["GET"])
    return router




def callbacks(sim: Sim, receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests posting ``receipts`` (``httpx`` keyword arguments beside the url): one JSON
    batch, or one status form per message in single mode (it carries only the provider's id)."""
    headers = {"Authorization": f"Bearer {sim.config.dlr_token}"}
    if sim.config.mode == "single":
        return [{"headers": headers,
                 "data": callback_form(provider_message_id=r["provider_message_id"],
                                       status=r["status"], to=r["to"])} for r in receipts]
    return [{"headers": headers, "json": {"receipts": receipts}}]
