"""A fleet of three collector processes on one ClickHouse (the HTTP test server): senders over OTLP/gRPC
and OTLP/HTTP, batches re-sent to another collector, calls recorded twice (two spans, one response ID)
with the two spans sent to different collectors, one collector SIGKILLed and restarted. Afterwards
nothing is lost or doubled, the totals are exact, every collector's `/v1/budgets` answers the fleet's
usage and breaker, and each quota crossing and breaker trip is recorded and delivered once, at the
fleet's true usage, no later than the documented staleness after the fleet's usage crossed it."""

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
from tokenbook.collector.budgets.counters import CONFIRM_S

pytestmark = pytest.mark.e2e  # starts processes

LIMIT = 6000  # tokens per tenant and day: 40 calls of 150 tokens; over it from the 41st
AT_RISK = LIMIT * 8 // 10
BREAKER_CAP = 6000  # tokens per breaker window (5 minutes: the whole run) and tenant, fleet-wide
CALL_TOKENS = 150
FLEET_SYNC = 0.5
MAX_DELAY = 0.05
# A crossing is confirmed by readings spanning fleet_sync + max_delay + CONFIRM_S; the first reading
# comes at most max_delay + the insert + fleet_sync after the call, the confirming one at most a
# fleet_sync after the span; plus the inserts, the queries and scheduling slack on two shared cores.
CONFIRM = FLEET_SYNC + MAX_DELAY + CONFIRM_S
STALENESS = MAX_DELAY + 2 * FLEET_SYNC + CONFIRM + 2.5

Call = tuple[str, ...]  # a call's identity: (trace, span) of a span, or ("response", id) of a pair


class Fleet:
    """Sends batches round-robin over gRPC and HTTP, retrying on the next collector when one is down,
    re-sending every third batch to another collector, and sending the two spans of a double-recorded
    call to two collectors; records when each call was first sent and which collector acknowledged
    it when, to tell when the fleet could first see each tenant's usage reach a threshold."""

    def __init__(self, collectors: list[CollectorProcess]) -> None:
        self.collectors = collectors
        self.lock = threading.Lock()
        self.calls: dict[str, set[Call]] = {}  # tenant -> calls acknowledged
        self.sent: dict[Call, float] = {}  # call -> first sent at
        self.acks: list[tuple[str, list[Call], float, int]] = []  # tenant, calls, time, collector
        self.down: tuple[int, float, float] | None = None  # collector killed, killed at, back at
        self.resent = 0
        self.pairs = 0
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

    def _next_turn(self) -> int:
        with self.lock:
            self.turn += 1
            return self.turn

    def _sent(self, tenant: str, calls: list[Call], collector: int) -> None:
        with self.lock:
            self.calls.setdefault(tenant, set()).update(calls)
            self.acks.append((tenant, calls, time.time(), collector))

    def _sending(self, calls: list[Call]) -> None:
        with self.lock:
            at = time.time()
            for c in calls:
                self.sent.setdefault(c, at)

    def send(self, tenant: str, calls: int, batch: int = 5) -> None:
        factory = SpanFactory()
        for _ in range(calls // batch):
            spans = factory.chats(batch, tenant=tenant)
            turn = self._next_turn()
            keys: list[Call] = [(str(s.context.trace_id), str(s.context.span_id)) for s in spans]
            self._sending(keys)
            acked = self.export(turn, spans)
            self._sent(tenant, keys, acked)
            if turn % 3 == 0:  # the ack was lost: the exporter re-sends elsewhere
                again = self.export(acked + 1, spans)
                self._sent(tenant, keys, again)
                with self.lock:
                    self.resent += len(spans)

    def send_pairs(self, tenant: str, calls: int) -> None:
        """`calls` calls each recorded by two spans in two traces (one response ID), sent to two
        collectors: the decision pass bills one of them."""
        first, second = SpanFactory("gateway-a"), SpanFactory("gateway-a")
        for _ in range(calls):
            response = f"chatcmpl-{uuid.uuid4().hex}"
            attrs = {"gen_ai.response.id": response}
            spans = [first.chats(1, tenant=tenant, **attrs), second.chats(1, tenant=tenant, **attrs)]
            turn = self._next_turn()
            key: list[Call] = [("response", response)]
            self._sending(key)
            for i, span in enumerate(spans):
                self._sent(tenant, key, self.export(turn + i, span))
            with self.lock:
                self.pairs += 1

    def crossed(self, tenant: str, threshold: int) -> float:
        """When the fleet could first see `tenant`'s usage reach `threshold`: a span acknowledged by the
        killed collector shortly before the kill waited in its write-ahead log until the restart."""
        assert self.down is not None
        index, killed, back = self.down
        seen: dict[Call, float] = {}
        for t, calls, at, collector in self.acks:
            if t != tenant:
                continue
            if collector == index and killed - 1.0 <= at <= back:
                at = max(at, back)
            for c in calls:
                seen[c] = min(seen.get(c, at), at)
        times = sorted(seen.values())
        return times[-(-threshold // CALL_TOKENS) - 1]

    def usage_sent_by(self, tenant: str, at: float) -> int:
        """The most tokens `tenant` could have used at `at`: its calls sent before then."""
        return CALL_TOKENS * sum(1 for c in self.calls[tenant] if self.sent[c] <= at)

    def run(self, plan: dict[str, int], pairs: dict[str, int] | None = None) -> None:
        threads = [threading.Thread(target=self.send, args=(t, n)) for t, n in plan.items()]
        threads += [threading.Thread(target=self.send_pairs, args=(t, n)) for t, n in (pairs or {}).items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def budgets(c: CollectorProcess, tenant: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{c.admin_url}/v1/budgets?tenant={tenant}", timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


@pytest.fixture
def fleet(tmp_path: Path, clickhouse_url: str) -> Iterator[tuple[list[CollectorProcess], WebhookReceiver]]:
    database = f"fleet_{uuid.uuid4().hex[:8]}"
    with WebhookReceiver() as hook:
        cfg = {
            "quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": LIMIT}, "enforcement": "hard"}],
            "fleet_sync": f"{int(FLEET_SYNC * 1000)}ms",
            "breaker": {
                "enabled": True,
                "window": "300s",
                "baseline": "600s",
                "max_tokens": BREAKER_CAP,
                "cooldown": "10m",
            },
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
    sim.run({"alpha": 30, "beta": 20, "gamma": 20})  # nobody at risk yet (4,500 tokens at most)
    killed = time.time()
    collectors[2].kill()  # SIGKILL: its acknowledged spans wait in its write-ahead log
    sim.run({"alpha": 20, "beta": 15})  # alpha over the limit and the breaker cap, with one collector down
    collectors[2].start()
    sim.down = (2, killed, time.time())
    sim.run({"beta": 15, "gamma": 10}, pairs={"gamma": 5})  # beta over, gamma at risk, after the restart
    expected = {t: len(calls) for t, calls in sim.calls.items()}
    assert expected == {"alpha": 50, "beta": 50, "gamma": 35}
    assert sim.resent > 0 and sim.pairs == 5

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
    # ... and in every collector's counters and breaker (the gateway endpoint), once reconciled
    deadline = time.monotonic() + STALENESS + 5
    used: dict[tuple[int, str], tuple[int, int]] = {}
    want_used = {(i, t): (n * CALL_TOKENS,) * 2 for i in range(3) for t, n in expected.items()}
    while time.monotonic() < deadline:
        docs = {(i, t): budgets(c, t) for i, c in enumerate(collectors) for t in expected}
        used = {k: (d["quotas"][0]["used"]["tokens"], d["breaker"]["burn_tokens"]) for k, d in docs.items()}
        if used == want_used:
            break
        time.sleep(0.2)
    assert used == want_used
    # the breaker trips once its burn readings span CONFIRM: poll
    want_states = {"alpha": ("over_budget", "tripped"), "beta": ("over_budget", "tripped"),
                   "gamma": ("at_risk", "ok")}  # fmt: skip
    deadline = time.monotonic() + STALENESS + 5
    states: dict[int, dict[str, tuple[str, str]]] = {}
    while time.monotonic() < deadline:
        docs = {(i, t): budgets(c, t) for i, c in enumerate(collectors) for t in expected}
        states = {
            i: {t: (docs[i, t]["quotas"][0]["state"], docs[i, t]["breaker"]["state"]) for t in expected}
            for i in range(3)
        }
        if all(s == want_states for s in states.values()):
            break
        time.sleep(0.2)
    assert states == dict.fromkeys(range(3), want_states)
    assert all(budgets(c, "alpha")["denied_by"] == ["daily", "breaker"] for c in collectors)

    # each crossing and trip recorded once for the fleet and delivered once, within the staleness bound
    want = {("alpha", "at_risk"), ("alpha", "over_budget"), ("beta", "at_risk"), ("beta", "over_budget"),
            ("gamma", "at_risk"), ("alpha", "tripped"), ("beta", "tripped")}  # fmt: skip
    docs_delivered = hook.wait_for(len(want), timeout=STALENESS + 5)
    time.sleep(1.0)  # a second delivery of any crossing would arrive by now
    delivered = [(d["subject"]["tenant"], d["state"]) for d in hook.bodies(ok_only=False)]
    assert sorted(delivered) == sorted(want), delivered
    events = c0.query("SELECT tenant_id, state, used_tokens, event_time FROM budget_events")
    assert sorted((t, s) for t, s, _, _ in events) == sorted(want)  # one row each, even without FINAL
    for tenant, state, used_tokens, event_time in events:
        threshold = {"at_risk": AT_RISK, "over_budget": LIMIT + 1, "tripped": BREAKER_CAP + 1}[state]
        at = event_time.timestamp() if isinstance(event_time, datetime) else float(event_time)
        assert threshold <= used_tokens <= sim.usage_sent_by(tenant, at), (tenant, state, used_tokens)
        crossed = sim.crossed(tenant, threshold)
        assert at <= crossed + STALENESS, (tenant, state, at - crossed)
    assert {d["event_id"] for d in docs_delivered} == {d["event_id"] for d in hook.bodies()}
    assert time.monotonic() - started < 90
