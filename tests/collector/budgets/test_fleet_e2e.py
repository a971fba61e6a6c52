"""A fleet of three collector processes on one ClickHouse (the HTTP test server): senders over OTLP/gRPC
and OTLP/HTTP, batches re-sent to another collector, one collector SIGKILLed and restarted. Afterwards
nothing is lost or doubled, the totals are exact, every collector's `/v1/budgets` answers the fleet's
usage, and each quota crossing is recorded and delivered once, no later than the documented staleness
after the fleet's usage crossed it."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory
from tests.collector.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e  # starts processes

LIMIT = 6000  # tokens per tenant and day: 40 calls of 150 tokens
AT_RISK = LIMIT * 8 // 10
CALL_TOKENS = 150
FLEET_SYNC = 0.5
MAX_DELAY = 0.05
# budgets.fleet_sync + storage.batch.max_delay + the insert and the sync's queries, plus scheduling slack
# on a shared two-core machine
STALENESS = FLEET_SYNC + MAX_DELAY + 2.5


class Fleet:
    """Sends batches round-robin over gRPC and HTTP, retrying on the next collector when one is down,
    and re-sending every third batch to another collector; records which collector acknowledged which
    spans when, to tell when the fleet could first see each tenant's usage cross AT_RISK and LIMIT."""

    def __init__(self, collectors: list[CollectorProcess]) -> None:
        self.collectors = collectors
        self.lock = threading.Lock()
        self.acked: dict[str, set[tuple[int, int]]] = {}  # tenant -> (trace, span) acknowledged
        self.acks: list[tuple[str, list[tuple[int, int]], float, int]] = []  # tenant, spans, time, collector
        self.down: tuple[int, float, float] | None = None  # collector killed, killed at, back at
        self.resent = 0
        self.turn = 0

    def export(self, index: int, spans: list[ReadableSpan]) -> int:
        """Export to collector `index`, or the next one up; returns the collector that acknowledged."""
        for step in range(len(self.collectors) * 3):
            c = self.collectors[(index + step) % len(self.collectors)]
            if c.proc is None:
                continue
            exporter: Any = (
                GrpcExporter(endpoint=c.grpc_endpoint, insecure=True, timeout=3)
                if (index + step) % 2 == 0
                else HttpExporter(endpoint=c.http_url, timeout=3)
            )
            try:
                ok = exporter.export(spans) is SpanExportResult.SUCCESS
            finally:
                exporter.shutdown()
            if ok:
                return (index + step) % len(self.collectors)
            time.sleep(0.2)
        raise AssertionError("no collector acknowledged a batch")

    def send(self, tenant: str, calls: int, batch: int = 5) -> None:
        factory = SpanFactory()
        for _ in range(calls // batch):
            spans = factory.chats(batch, tenant=tenant)
            with self.lock:
                self.turn += 1
                turn = self.turn
            keys = [(s.context.trace_id, s.context.span_id) for s in spans]
            acked = self.export(turn, spans)
            with self.lock:
                self.acked.setdefault(tenant, set()).update(keys)
                self.acks.append((tenant, keys, time.time(), acked))
            if turn % 3 == 0:  # the ack was lost: the exporter re-sends elsewhere
                again = self.export(acked + 1, spans)
                with self.lock:
                    self.acks.append((tenant, keys, time.time(), again))
                    self.resent += len(spans)

    def crossed(self, tenant: str, threshold: int) -> float:
        """When the fleet could first see `tenant`'s usage reach `threshold`: a span acknowledged by the
        killed collector shortly before the kill waited in its write-ahead log until the restart."""
        assert self.down is not None
        index, killed, back = self.down
        seen: dict[tuple[int, int], float] = {}
        for t, keys, at, collector in self.acks:
            if t != tenant:
                continue
            if collector == index and killed - 1.0 <= at <= back:
                at = max(at, back)
            for key in keys:
                seen[key] = min(seen.get(key, at), at)
        times = sorted(seen.values())
        return times[-(-threshold // CALL_TOKENS) - 1]

    def run(self, plan: dict[str, int]) -> None:
        threads = [threading.Thread(target=self.send, args=(t, n)) for t, n in plan.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def budgets(c: CollectorProcess, tenant: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{c.admin_url}/v1/budgets?tenant={tenant}", timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    (quota,) = doc["quotas"]
    assert isinstance(quota, dict)
    return quota


@pytest.fixture
def fleet(tmp_path: Path, clickhouse_url: str) -> Iterator[tuple[list[CollectorProcess], WebhookReceiver]]:
    database = f"fleet_{uuid.uuid4().hex[:8]}"
    with WebhookReceiver() as hook:
        cfg = {
            "quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": LIMIT}, "enforcement": "hard"}],
            "fleet_sync": f"{int(FLEET_SYNC * 1000)}ms",
            "alerts": {
                "webhook": {"url": hook.url, "secret": "fleet-e2e-secret-0123456789", "backoff": "50ms"}
            },
        }
        collectors = [
            CollectorProcess(
                tmp_path / f"c{i}",
                storage={"clickhouse": {"url": clickhouse_url, "database": database}},
                budgets=cfg,
            )
            for i in range(3)
        ]
        collectors[0].start()  # migrates the shared database first
        starters = [threading.Thread(target=c.start) for c in collectors[1:]]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        yield collectors, hook
        for c in collectors:
            if c.proc is not None:
                c.stop()


def test_three_collectors_count_every_call_once_and_cross_each_quota_once(
    fleet: tuple[list[CollectorProcess], WebhookReceiver],
) -> None:
    started = time.monotonic()
    collectors, hook = fleet
    sim = Fleet(collectors)
    sim.run({"alpha": 30, "beta": 20, "gamma": 25})  # nobody over yet; alpha at risk
    killed = time.time()
    collectors[2].kill()  # SIGKILL: its acknowledged spans wait in its write-ahead log
    sim.run({"alpha": 20, "beta": 15})  # alpha over the limit, with one collector down
    collectors[2].start()
    sim.down = (2, killed, time.time())
    sim.run({"beta": 15, "gamma": 10})  # beta over the limit, gamma at risk, after the restart
    expected = {t: len(keys) for t, keys in sim.acked.items()}
    assert expected == {"alpha": 50, "beta": 50, "gamma": 35}
    assert sim.resent > 0

    # 0 lost, 0 doubled, exact totals: in the ledger's billed view ...
    c0 = collectors[0]
    sql = "SELECT tenant_id, count(), sum(input_tokens + output_tokens) FROM v_calls GROUP BY tenant_id"
    deadline = time.monotonic() + 20
    rows: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        rows = {t: (int(n), int(tok)) for t, n, tok in c0.query(sql)}
        if rows == {t: (n, n * CALL_TOKENS) for t, n in expected.items()}:
            break
        time.sleep(0.2)
    assert rows == {t: (n, n * CALL_TOKENS) for t, n in expected.items()}
    # ... and in every collector's counters (the gateway endpoint), after one reconciliation
    deadline = time.monotonic() + STALENESS + 5
    used: dict[tuple[int, str], int] = {}
    while time.monotonic() < deadline:
        used = {(i, t): budgets(c, t)["used"]["tokens"] for i, c in enumerate(collectors) for t in expected}
        if all(v == expected[t] * CALL_TOKENS for (_, t), v in used.items()):
            break
        time.sleep(0.2)
    assert used == {(i, t): expected[t] * CALL_TOKENS for i in range(3) for t in expected}
    states = {t: budgets(c0, t)["state"] for t in expected}
    assert states == {"alpha": "over_budget", "beta": "over_budget", "gamma": "at_risk"}

    # each crossing recorded once for the fleet and delivered once, within the staleness bound
    want = {("alpha", "at_risk"), ("alpha", "over_budget"), ("beta", "at_risk"), ("beta", "over_budget"),
            ("gamma", "at_risk")}  # fmt: skip
    docs = hook.wait_for(len(want), timeout=STALENESS + 5)
    time.sleep(1.0)  # a second delivery of any crossing would arrive by now
    delivered = [(d["subject"]["tenant"], d["state"]) for d in hook.bodies(ok_only=False)]
    assert sorted(delivered) == sorted(want), delivered
    events = c0.query(
        "SELECT tenant_id, state, used_tokens, event_time FROM budget_events WHERE rule = 'daily'"
    )
    assert sorted((t, s) for t, s, _, _ in events) == sorted(want)  # one row each, even without FINAL
    for tenant, state, used_tokens, event_time in events:
        threshold = AT_RISK if state == "at_risk" else LIMIT
        assert used_tokens >= threshold
        at = event_time.timestamp() if isinstance(event_time, datetime) else float(event_time)
        crossed = sim.crossed(tenant, threshold)
        assert at <= crossed + STALENESS, (tenant, state, at - crossed)
    assert {d["event_id"] for d in docs} == {d["event_id"] for d in hook.bodies()}
    assert time.monotonic() - started < 60
