"""Which addresses a tenant webhook may reach (``sender.webhooks.ssrf``): pure checks."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexcast.core.errors import InvalidInput
from sender.webhooks.ssrf import Target, check_url, refusal, resolve_target

REFUSED = {
    "127.0.0.1": "loopback", "127.255.0.9": "loopback", "::1": "loopback",
    "10.0.0.1": "private", "172.16.5.4": "private", "192.168.1.1": "private",
    "fc00::1": "private", "169.254.169.254": "link-local", "fe80::1": "link-local",
    "224.0.0.1": "multicast", "ff02::1": "multicast", "0.0.0.0": "unspecified", "::": "unspecified",
    "::ffff:127.0.0.1": "loopback", "::ffff:10.1.1.1": "private", "100.64.0.1": "not public",
    "240.0.0.1": "private",
}


@pytest.mark.parametrize(("address", "reason"), REFUSED.items())
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111",
                                     "::ffff:93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@given(st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                        "169.254.0.0/16", "fe80::/10", "fc00::/7"]), st.integers(min_value=0))
def test_every_address_of_an_internal_network_is_refused(network: str, offset: int) -> None:
    net = ipaddress.ip_network(network)
    assert refusal(net[offset % net.num_addresses]) is not None


@pytest.mark.parametrize("url", ["ftp://example.com/", "http:///nohost", "https://u:p@example.com/",
                                 "example.com/hook", "http://example.com:99999/"])
def test_urls_that_are_not_plain_http_are_invalid(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url)


def test_default_ports() -> None:
    assert check_url("https://example.com/x") == ("https", "example.com", 443)
    assert check_url("http://example.com:8080/x") == ("http", "example.com", 8080)


async def test_a_literal_private_address_is_refused_unless_allowed() -> None:
    with pytest.raises(InvalidInput, match="loopback"):
        await resolve_target("http://127.0.0.1:8080/hook", allow_private=False)
    target = await resolve_target("http://127.0.0.1:8080/hook", allow_private=True)
    assert target == Target("http", "127.0.0.1", 8080, ipaddress.ip_address("127.0.0.1"))


def test_the_request_goes_to_the_checked_address() -> None:
    v4 = Target("https", "hooks.example.com", 443, ipaddress.ip_address("93.184.216.34"))
    v6 = Target("http", "h.example", 8080, ipaddress.ip_address("2606:4700::1"))
    assert v4.pinned("https://hooks.example.com/a?b=1") == "https://93.184.216.34:443/a?b=1"
    assert v6.pinned("http://h.example:8080/x") == "http://[2606:4700::1]:8080/x"
