"""Status callbacks of single-message providers normalise to the batch receipts' states."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from providersim import UNDELIVERABLE_CODE, callback_form
from sender.providers.status import StatusCallback


@pytest.mark.parametrize(
    ("status", "code", "final"),
    [
        ("delivered", None, ("delivered", None)),
        ("undelivered", "30003", ("failed", "provider error 30003")),
        ("failed", None, ("failed", "provider error unknown")),
        ("sent", None, None),
        ("queued", None, None),
        ("accepted", None, None),
    ],
)
def test_final_statuses(status: str, code: str | None, final: tuple[str, str | None] | None) -> None:
    form = {"MessageSid": "SM123", "MessageStatus": status, "AccountSid": "AC1"}
    if code:
        form["ErrorCode"] = code
    assert StatusCallback.model_validate(form).final() == final


@pytest.mark.parametrize(
    "form",
    [{"MessageStatus": "delivered"}, {"MessageSid": "SM1", "MessageStatus": "lost"},
     {"MessageSid": "SM 1; drop", "MessageStatus": "delivered"}, {"MessageSid": "SM1"}],
)
def test_bad_callbacks_are_refused(form: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        StatusCallback.model_validate(form)


def test_the_simulators_form_round_trips() -> None:
    ok = callback_form(provider_message_id="sim-1", status="delivered", to="+13125550100")
    assert StatusCallback.model_validate(ok).final() == ("delivered", None)
    bad = callback_form(provider_message_id="sim-2", status="failed", to="+13125550100")
    assert bad["ErrorCode"] == UNDELIVERABLE_CODE
    assert StatusCallback.model_validate(bad).final() == ("failed", f"provider error {UNDELIVERABLE_CODE}")
