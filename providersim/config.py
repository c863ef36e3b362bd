"""How a simulated provider behaves: its dialect, limits, faults and receipts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ControlIn", "Dialect", "SimConfig"]

Rate = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Millis = Annotated[int, Field(ge=0)]
Dialect = Literal["generic", "twilio", "vonage", "plivo", "sinch", "telnyx"]


class SimConfig(BaseModel):
    """How the simulated provider behaves. Parts of it can be changed live via ``/control``."""

    model_config = ConfigDict(extra="forbid")

    rate_per_s: Rate = 1000.0
    rate_burst: Rate | None = None  # destinations taken at once above the rate; None: max(rate, 1000)
    dlr_url: str | None = None
    dlr_delay_s: Annotated[float, Field(ge=0)] = 0.5
    dlr_token: str = "dlr-token"
    token: str = "sim-token"
    dialect: Dialect = "generic"  # the provider API it speaks (see providersim.dialects)
    mode: Literal["batch", "single"] = "batch"  # the generic dialect's two shapes
    account: str = "AC00000000000000000000000000000000"  # the account id in dialects' paths
    signing_key: str = "sim-signing-key"  # HMAC key or Ed25519 seed of the callbacks it signs
    lookup: bool = True
    fail_rate: Probability = 0.0
    garble_rate: Probability = 0.0  # accepted, then answered 200 with an unreadable body
    callback_dup_rate: Probability = 0.0  # a callback posted twice
    callback_shuffle: bool = False  # a chunk's callbacks posted in random order (late "sent")
    latency_ms: Millis = 0
    deliver_fail_rate: Probability = 0.0
    # Vonage: a message whose text contains this (at its acceptance) gets a failed DLR for its
    # last part and delivered ones for the others (deterministic, unlike deliver_fail_rate)
    part_fail_marker: Annotated[str, Field(min_length=1)] | None = None
    retry_after_s: Annotated[int, Field(ge=0)] = 0  # fixed Retry-After on 429s; 0 = computed
    seed: int = 0
    ledger_path: str | None = None  # keep the ledger in this file across restarts (providersim.journal)
    # SMSC mode (providersim.smsc): SMPP 3.4 on smpp_port beside the HTTP API. system_id and
    # password are their own settings: SMPP allows 15 and 8 characters, `account` and `token`
    # are longer.
    smpp_port: Annotated[int, Field(ge=0, le=65535)] | None = None  # 0 = any free port
    smpp_host: str = "127.0.0.1"
    smpp_system_id: Annotated[str, Field(min_length=1, max_length=15)] = "hexcast"
    smpp_password: Annotated[str, Field(max_length=8)] = "secret"
    smpp_id_format: Literal["hex", "decimal"] = "hex"  # the id: a receipt's text carries
    smpp_throttle_per_s: Rate | None = None  # submit_sm/s past which ESME_RTHROTTLED answers
    smpp_resp_delay_s: Annotated[float, Field(ge=0)] = 0.0  # every response this late
    smpp_drop_after: Annotated[int, Field(ge=1)] | None = None  # close after N submit_sm, once
    smpp_refuse_bind: bool = False  # every bind answered ESME_RBINDFAIL
    smpp_queue_full_per_s: Rate | None = None  # submit_sm/s past which ESME_RMSGQFUL answers
    smpp_throttle_after: Annotated[int, Field(ge=0)] | None = None  # submits taken, then throttled
    smpp_hold_submits: bool = False  # submit_sm taken (ledgered) and never answered
    smpp_mute_enquire: bool = False  # enquire_link never answered


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_per_s: Rate | None = None
    rate_burst: Rate | None = None
    dlr_delay_s: Annotated[float, Field(ge=0)] | None = None
    fail_rate: Probability | None = None
    garble_rate: Probability | None = None
    callback_dup_rate: Probability | None = None
    callback_shuffle: bool | None = None
    latency_ms: Millis | None = None
    deliver_fail_rate: Probability | None = None
    part_fail_marker: Annotated[str, Field(min_length=1)] | None = None
    lookup: bool | None = None
    dlr_url: str | None = None
    smpp_throttle_per_s: Rate | None = None
    smpp_resp_delay_s: Annotated[float, Field(ge=0)] | None = None
    smpp_drop_after: Annotated[int, Field(ge=1)] | None = None
    smpp_refuse_bind: bool | None = None
    smpp_queue_full_per_s: Rate | None = None
    smpp_throttle_after: Annotated[int, Field(ge=0)] | None = None
    smpp_hold_submits: bool | None = None
    smpp_mute_enquire: bool | None = None
    smpp_id_format: Literal["hex", "decimal"] | None = None
