"""Short links: deterministic codes, punctuation kept outside, bots not counted."""

from __future__ import annotations

import pytest

from sender.links import is_bot, shorten


def test_urls_are_replaced_deterministically_and_punctuation_stays() -> None:
    body = "Sale! See https://shop.example.com/deals?x=1. Or http://a.example/b)"
    out, links = shorten(body, message_key="blk-1", base_url="https://hx.example/")
    again, _ = shorten(body, message_key="blk-1", base_url="https://hx.example/")
    assert out == again
    assert [link.url for link in links] == ["https://shop.example.com/deals?x=1", "http://a.example/b"]
    assert out == (f"Sale! See https://hx.example/r/{links[0].code}. "
                   f"Or https://hx.example/r/{links[1].code})")
    other, _ = shorten(body, message_key="blk-2", base_url="https://hx.example")
    assert other != out


def test_no_url_no_change() -> None:
    assert shorten("20% off today", message_key="k", base_url="https://x") == ("20% off today", [])


@pytest.mark.parametrize("agent", [None, "", "Slackbot-LinkExpanding 1.0", "facebookexternalhit/1.1",
                                   "WhatsApp/2.23", "Mozilla/5.0 (compatible; Googlebot/2.1)",
                                   "curl/8.0", "Mozilla/5.0 HeadlessChrome/120"])
def test_bots_and_prefetchers(agent: str | None) -> None:
    assert is_bot(agent)


def test_a_phone_browser_is_a_person() -> None:
    assert not is_bot("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
                      " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
