"""Reply keywords: exact words in any case with surrounding spaces; free text is reviewed."""

from __future__ import annotations

import pytest

from sender.inbound import InboundKind, classify, confirmation_text, needs_review


@pytest.mark.parametrize("word", ["STOP", "stopall", " Unsubscribe ", "cancel", "END\n", "quit",
                                  "Revoke", "OPTOUT"])
def test_stop_words_opt_out(word: str) -> None:
    assert classify(word) is InboundKind.OPT_OUT


@pytest.mark.parametrize(("text", "kind"), [("start", InboundKind.OPT_IN), (" UNSTOP", InboundKind.OPT_IN),
                                            ("yes", InboundKind.OPT_IN), ("Join", InboundKind.OPT_IN),
                                            ("help", InboundKind.HELP), ("INFO ", InboundKind.HELP)])
def test_other_keywords(text: str, kind: InboundKind) -> None:
    assert classify(text) is kind


@pytest.mark.parametrize("text", ["please stop texting me", "STOP IT", "Stop!", "don't stop"])
def test_free_text_mentioning_stop_is_flagged_not_applied(text: str) -> None:
    kind = classify(text)
    assert kind is InboundKind.OTHER
    assert needs_review(text, kind)


def test_confirmations_carry_no_marketing_and_free_text_gets_none() -> None:
    stop = confirmation_text(InboundKind.OPT_OUT, tenant_name="Acme", help_text="Call 555")
    assert stop is not None
    assert "unsubscribed" in stop
    assert confirmation_text(InboundKind.HELP, tenant_name="Acme", help_text="Call 555") == "Acme: Call 555"
    assert confirmation_text(InboundKind.OTHER, tenant_name="Acme", help_text="x") is None
    assert not needs_review("see you soon", classify("see you soon"))
