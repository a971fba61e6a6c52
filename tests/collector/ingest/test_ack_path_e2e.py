"""The acknowledgement path in a real collector: a request acknowledged once logged survives ``kill -9``
before its rows are stored, and its spans count once in the ledger and in the budget counters however
often they are delivered, before and after the answer, before and after the restart."""

from __future__ import annotations

import json
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

CHAT_COST = Decimal("0.00075")
CHAT_TOKENS = 150


def _send(c: CollectorProcess, spans: list[Any]) -> None:
    exporter = OTLPSpanExporter(endpoint=c.http_url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()


def _used_tokens(c: CollectorProcess, tenant: str) -> int:
    with urllib.request.urlopen(f"{c.admin_url}/v1/budgets?tenant={tenant}", timeout=10) as r:
        (quota,) = [q for q in json.loads(r.read())["quotas"] if q["rule"] == "daily"]
    used: int = quota["used"]["tokens"]
    return used


def test_acked_then_killed_before_the_rows_are_stored_counts_once_after_restart(tmp_path: Path) -> None:
    collector = CollectorProcess(
        tmp_path / "data",
        # the writer gathers for 30 s: the acknowledged requests are not stored when it is killed
        storage={"batch": {"max_delay": "30s", "max_rows": 1_000_000}},
        budgets={"quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 10**9}}]},
    ).start()
    factory = SpanFactory()
    batches = [factory.chats(10, tenant="acked") for _ in range(3)]
    for batch in batches:
        _send(collector, batch)
    _send(collector, batches[0])  # delivered again before its rows are built: dropped at the answer
    time.sleep(1.0)
    assert collector.scalar("SELECT count() FROM llm_calls WHERE tenant_id = 'acked'") == 0
    assert collector.metric("deduplicated_spans_total") == 10
    collector.kill()

    collector.config["storage"]["batch"] = {"max_delay": "50ms"}
    collector.start()
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'acked'", 30, timeout=60)
    for batch in batches:  # delivered again after the restart: the dedup memory was warmed from the log
        _send(collector, batch)
    time.sleep(1.5)
    assert collector.scalar("SELECT count() FROM llm_calls FINAL WHERE tenant_id = 'acked'") == 30
    assert collector.scalar("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'acked'") == 30 * CHAT_COST
    assert collector.metric("deduplicated_spans_total") == 30
    assert _used_tokens(collector, "acked") == 30 * CHAT_TOKENS
    assert collector.stop() == 0
