"""The pure parts of :mod:`hexcast.testing`: polling, the names that keep tests apart, and what
the seeder hands back. Nothing here opens a connection."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from hexcast.testing import (
    OPERATOR_TOKEN,
    SeededObjects,
    clear_prefixes,
    eventually,
    make_settings,
    seed_objects,
)
from hexcast.testing.db import database_name, dsn
from hexcast.testing.factories import tenant_name
from hexcast.testing.keys import PREFIX_ROOT, handed_out, redis_prefix, scan_pattern


def test_eventually_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "ready", "later"])
    assert eventually(lambda: next(answers), timeout=5, every=0.001) == "ready"


def test_eventually_fails_naming_the_timeout_and_the_last_value() -> None:
    calls: list[int] = []

    def never() -> list[int]:
        calls.append(1)
        return []

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"condition not met within 0\.05s \(last: \[\]\)"):
        eventually(never, timeout=0.05, every=0.01)
    assert len(calls) >= 2  # polled again, not once
    assert time.monotonic() - started < 1.0


def test_database_names_are_new_each_time_and_keep_their_prefix() -> None:
    names = {database_name("hexcast_bench_") for _ in range(200)}
    assert len(names) == 200
    assert all(re.fullmatch(r"hexcast_bench_[0-9a-f]{12}", n) for n in names)
    assert database_name().startswith("hexcast_test_")


@pytest.mark.parametrize("prefix", ['x"; DROP DATABASE postgres; --', "Upper_", "", "1abc"])
def test_a_prefix_that_is_no_plain_identifier_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="database name prefix"):
        database_name(prefix)


def test_a_database_url_names_the_database_on_the_server() -> None:
    server = "postgresql://bench@db.example:6543/postgres"
    assert dsn("hexcast_test_1", server=server) == "postgresql://bench@db.example:6543/hexcast_test_1"


def test_redis_prefixes_are_unique_under_the_root_and_remembered() -> None:
    made = [redis_prefix() for _ in range(100)]
    assert len(set(made)) == 100
    assert all(p.startswith(PREFIX_ROOT) and p.endswith(":") for p in made)
    assert handed_out()[-100:] == made
    assert redis_prefix("abc", root="hxbench:") == "hxbench:abc:"


def test_a_redis_prefix_tag_with_a_glob_character_is_refused() -> None:
    with pytest.raises(ValueError, match="redis prefix tag"):
        redis_prefix("a*")


def test_one_prefix_is_scanned_alone_and_many_under_their_root() -> None:
    assert scan_pattern(["hxtest:ab:"], "hxtest:") == "hxtest:ab:*"
    assert scan_pattern(["hxtest:ab:", "hxtest:cd:"], "hxtest:") == "hxtest:*"


async def test_clearing_no_prefix_deletes_nothing_and_connects_nowhere() -> None:
    assert await clear_prefixes([], url="redis://nowhere.invalid:1/0") == 0


def test_tenant_names_are_new_each_time() -> None:
    names = {tenant_name("camp") for _ in range(200)}
    assert len(names) == 200
    assert all(re.fullmatch(r"camp-[0-9a-f]{8}", n) for n in names)


def test_settings_of_two_tests_share_no_topic_group_or_key() -> None:
    one = make_settings("kafka://127.0.0.1:1", "postgresql://h/db")
    two = make_settings("kafka://127.0.0.1:1", "postgresql://h/db", sender_bulk_share=1.0)
    assert one.topic_prefix != two.topic_prefix
    assert one.app_id != two.app_id
    assert one.redis_prefix != two.redis_prefix
    assert one.state_dir != two.state_dir
    assert {one.redis_prefix, two.redis_prefix} <= set(handed_out())
    assert (one.operator_token, one.sender_quiet_hours) == (OPERATOR_TOKEN, False)
    assert two.sender_bulk_share == 1.0


def test_seeded_ids_by_parameter_name_and_first_as_path_values() -> None:
    seeded = SeededObjects(store_id=(3, 4), promotion_id=(5, 6), user_id=("u-0", "u-1"),
                           template_id=(7, 8), campaign_id=(9, 10))
    assert seeded.by_name() == {"store_id": [3, 4], "promotion_id": [5, 6], "user_id": ["u-0", "u-1"],
                                "template_id": [7, 8], "campaign_id": [9, 10]}
    with_otp = SeededObjects(store_id=(3,), promotion_id=(5,), user_id=("u-0",), template_id=(7,),
                             campaign_id=(9,), message_key="otp-1")
    assert with_otp.first() == {"store_id": "3", "promotion_id": "5", "user_id": "u-0",
                                "template_id": "7", "campaign_id": "9", "message_key": "otp-1"}


def test_seeding_nothing_is_refused_before_any_request() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    with httpx.Client(transport=httpx.MockTransport(refuse), base_url="http://api.invalid") as client, \
            pytest.raises(ValueError, match="at least one"):
        seed_objects(client, copies=0)
