"""What a soak samples, read from real services and real processes: two samples of two child
processes (one gone by the second), the test's own topics, Redis keys and the message states;
the samples survive samples.jsonl, and the report names every process in its tables and draws a
PNG per figure."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from hexcast.chaos.report import charts, write_report
from hexcast.chaos.sampling import Sampler, append_sample, load_samples
from hexcast.core.cache import Keys, connect_redis
from hexcast.core.settings import Settings
from hexcast.core.topics import topic_specs


@pytest.fixture
def children() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    procs = {"sleeper": subprocess.Popen(["sleep", "60"]),
             "pyworker": subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])}
    yield procs
    for proc in procs.values():
        proc.kill()
        proc.wait()


async def test_samples_are_real_and_the_report_names_every_process(
    settings: Settings, children: dict[str, subprocess.Popen[bytes]], tmp_path: Path,
) -> None:
    dlq = settings.topic("send.dlq")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(dlq, f"record {n}".encode())
    finally:
        await producer.stop()
    cache, key = connect_redis(settings.redis_url), Keys(settings.redis_prefix)
    await cache.set(key("soak", "a"), b"1")
    await cache.set(key("soak", "b"), b"2")
    await cache.aclose()

    pids = {name: proc.pid for name, proc in children.items()}
    sampler = Sampler(settings)
    try:
        first = await sampler.sample(pids)
        children["sleeper"].kill()
        children["sleeper"].wait()
        second = await sampler.sample(pids)
    finally:
        await sampler.close()

    assert set(first.processes) == {"sleeper", "pyworker"}
    assert set(second.processes) == {"pyworker"}, "a process that is gone is left out"
    for stat in first.processes.values():
        assert stat.rss_bytes > 0
        assert stat.open_fds >= 3
        assert stat.cpu_seconds >= 0
    assert set(first.topic_records) == set(topic_specs(settings))
    assert first.topic_records[dlq] == 3
    assert first.redis_keys == 2
    assert first.redis_used_bytes > 0
    assert {"queued", "sending", "delivered", "suppressed"} <= set(first.messages_by_state)
    assert first.tables["messages"] > 0
    assert "messages:indexes" in first.tables
    assert second.at > first.at

    jsonl = tmp_path / "samples.jsonl"
    for sample in (first, second):
        append_sample(jsonl, sample)
    with jsonl.open("a") as out:
        out.write(second.to_json()[:40])  # the soak was killed mid-line
    assert load_samples(jsonl) == [first, second]

    readme = write_report(tmp_path / "report", [first, second], title="Soak test",
                          facts={"duration": "2 s", "faults injected": "none"},
                          invariants_markdown="- every invariant held")
    text = readme.read_text()
    assert "| duration | 2 s |" in text
    assert "- every invariant held" in text
    for name in children:
        assert f"| {name} |" in text
    for chart in charts([first, second]):
        assert (readme.parent / f"{chart.key}.png").read_bytes().startswith(b"\x89PNG")
