"""Budgets end to end: a real collector process, the official OTLP/HTTP exporter, a real webhook
receiver on loopback. A tenant goes at_risk then over_budget with exactly one alert per crossing;
re-delivered spans do not move the counters; a restart keeps the state and repeats no alert;
concurrent senders are counted exactly; the gateway endpoint, `/metrics` and `tokenbook budgets`
report the same states."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import REPO, CollectorProcess, SpanFactory
from tests.collector.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e  # starts processes

SECRET = "e2e-shared-secret-0123456789"
CHAT_TOKENS = 150  # SpanFactory.chats: 100 input + 50 output


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(statuses=[503]) as receiver:  # the first delivery fails and is retried
        yield receiver


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory, hook: WebhookReceiver) -> Iterator[CollectorProcess]:
    budgets = {
        "quotas": [
            {"name": "daily", "window": "1d", "limit": {"tokens": 1500}, "enforcement": "hard"},
            {"name": "globex-monthly", "match": {"tenant": "globex"}, "window": "calendar_month",
             "timezone": "Europe/Paris", "limit": {"tokens": 10**9}},
        ],
        "budgets": [
            {"name": "ContractAnalyzer", "match": {"feature": "contracts"}, "limit": {"tokens": 400}}
        ],
        "alerts": {"webhook": {"url": hook.url, "secret": SECRET, "backoff": "50ms"}},
    }  # fmt: skip
    c = CollectorProcess(tmp_path_factory.mktemp("budgets") / "data", budgets=budgets).start()
    yield c
    if c.proc is not None:
        assert c.stop() == 0


def budgets(c: CollectorProcess, query: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{c.admin_url}/v1/budgets?{query}", timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


def send(c: CollectorProcess, spans: list[Any]) -> None:
    exporter = OTLPSpanExporter(endpoint=c.http_url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()


def daily(c: CollectorProcess, tenant: str) -> dict[str, Any]:
    quotas: list[dict[str, Any]] = budgets(c, f"tenant={tenant}")["quotas"]
    (quota,) = [q for q in quotas if q["rule"] == "daily"]
    return quota


def settled(c: CollectorProcess, query: str, used: dict[str, int], timeout: float = 15.0) -> None:
    """Wait until the quotas' used tokens are `used` (rule -> tokens): calls are counted once their rows
    are built, just behind the answer. A count past `used` never settles and fails."""
    deadline = time.monotonic() + timeout
    while True:
        found = {q["rule"]: q["used"]["tokens"] for q in budgets(c, query)["quotas"] if q["rule"] in used}
        if found == used or time.monotonic() > deadline:
            assert found == used
            return
        time.sleep(0.05)


def test_crossings_alert_once_redelivery_counts_once_restart_repeats_nothing(
    collector: CollectorProcess, hook: WebhookReceiver
) -> None:
    factory = SpanFactory()
    first = factory.chats(8, tenant="acme")  # 1200 tokens: 80% of 1500
    send(collector, first)
    (at_risk,) = hook.wait_for(1)
    assert (at_risk["rule"], at_risk["state"], at_risk["previous_state"]) == (
        "daily",
        "at_risk",
        "within_budget",
    )
    assert at_risk["used"]["tokens"] == 1200 and at_risk["subject"] == {"tenant": "acme"}
    send(collector, first)  # re-delivered: dropped by the dedup, the counters do not move
    assert daily(collector, "acme")["used"]["tokens"] == 1200
    send(collector, factory.chats(3, tenant="acme"))  # 1650 > 1500
    events = hook.wait_for(2)
    over = events[1]
    assert (over["state"], over["previous_state"], over["used"]["tokens"]) == ("over_budget", "at_risk", 1650)
    assert over["limit"] == {"tokens": 1500, "cost": None} and over["enforcement"] == "hard"
    doc = budgets(collector, "tenant=acme")
    assert doc["allowed"] is False and doc["denied_by"] == ["daily"]
    assert daily(collector, "acme")["remaining"]["tokens"] == 0
    # Every delivered body is signed; the failed first attempt was retried with the same event.
    from tokenbook.collector.budgets.webhook import SIGNATURE_HEADER, sign

    assert all(h[SIGNATURE_HEADER] == sign(SECRET, b) for h, b in hook.requests)
    assert len(hook.requests) == 3 and len(hook.bodies()) == 2

    assert collector.stop() == 0
    collector.start()
    assert daily(collector, "acme")["state"] == "over_budget"
    assert daily(collector, "acme")["used"]["tokens"] == 1650
    send(collector, first)  # re-delivered after the restart: still counted once
    assert daily(collector, "acme")["used"]["tokens"] == 1650
    # A new crossing after the restart; alerts are delivered in order, so any repeat would precede it.
    contracts = {"app.feature": "contracts", "tokenbook.context.id": "sess_xyz789"}
    send(collector, factory.chats(3, tenant="acme", **contracts))  # 450 tokens in one context
    events = hook.wait_for(4)
    assert [(e["rule"], e["state"]) for e in events] == [
        ("daily", "at_risk"),
        ("daily", "over_budget"),
        ("ContractAnalyzer", "at_risk"),  # one batch went past both thresholds: each is a crossing
        ("ContractAnalyzer", "over_budget"),
    ]
    assert len(hook.requests) == 5
    message = events[3]["message"]
    assert message == (
        "Budget 'ContractAnalyzer' exceeded token budget of 400 per context. "
        "Context ID: sess_xyz789, Actual: 450 tokens."
    )
    lines = [line for line in collector.log_lines() if "budget_event" in line]
    assert sorted({line["budget_event"]["event_id"] for line in lines}) == sorted(
        e["event_id"] for e in events
    )
    assert collector.scalar("SELECT count() FROM v_budget_events") == 4
    with urllib.request.urlopen(f"{collector.admin_url}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    metric_lines = metrics.splitlines()
    # Alerts counted since the restart; counters in memory: acme's daily quota and sess_xyz789.
    assert 'tokenbook_budget_alerts_total{kind="budget",state="at_risk"} 1' in metric_lines
    assert 'tokenbook_budget_alerts_total{kind="budget",state="over_budget"} 1' in metric_lines
    assert 'tokenbook_budget_counters{state="over_budget"} 2' in metric_lines


def test_concurrent_senders_produce_exact_counts(collector: CollectorProcess) -> None:
    factory = SpanFactory()
    batches = [factory.chats(50, tenant="globex") for _ in range(8)]  # 400 distinct spans

    def sender(k: int) -> None:  # each thread sends every batch: 4 deliveries of each span
        for i in range(len(batches)):
            send(collector, batches[(i + k) % len(batches)])

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settled(collector, "tenant=globex", {"daily": 400 * CHAT_TOKENS, "globex-monthly": 400 * CHAT_TOKENS})
    time.sleep(0.5)  # nothing counted twice arrives later
    doc = budgets(collector, "tenant=globex")
    used = {q["rule"]: q["used"]["tokens"] for q in doc["quotas"]}
    assert used == {"daily": 400 * CHAT_TOKENS, "globex-monthly": 400 * CHAT_TOKENS}


def test_tokenbook_budgets_prints_the_same_states(collector: CollectorProcess) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tokenbook", "budgets", "--tenant", "acme", "--format", "json",
         "--admin", f"127.0.0.1:{collector.admin_port}"],
        capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    (row,) = [r for r in rows if r["rule"] == "daily"]
    assert (row["state"], row["used_tokens"], row["limit_tokens"], row["remaining_tokens"]) == (
        "over_budget",
        daily(collector, "acme")["used"]["tokens"],
        1500,
        0,
    )


def test_gateway_endpoint_rejects_unknown_parameters(collector: CollectorProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        budgets(collector, "tenantt=acme")
    assert info.value.code == 400


def test_kill_9_keeps_exact_counters_and_one_row_per_crossing(collector: CollectorProcess) -> None:
    factory = SpanFactory()
    spans = factory.chats(8, tenant="initech") + factory.chats(3, tenant="initech")
    for start in range(0, len(spans), 2):  # acked = durable in the write-ahead log
        send(collector, spans[start : start + 2])
    sql = "SELECT state FROM v_budget_events WHERE tenant_id = 'initech' AND rule = 'daily' ORDER BY state"
    # Both crossings recorded before the kill: the restart must repeat neither. (A crossing killed
    # before it was recorded is alerted once at start: tests/collector/budgets/test_store.py.)
    collector.wait_for(f"SELECT count() FROM ({sql})", 2)
    collector.kill()
    collector.start()
    settled(collector, "tenant=initech", {"daily": 11 * CHAT_TOKENS})  # the log's unbuilt calls too
    quota = daily(collector, "initech")
    assert (quota["used"]["tokens"], quota["state"]) == (11 * CHAT_TOKENS, "over_budget")
    send(collector, spans)  # re-delivered after the crash: still counted once
    assert daily(collector, "initech")["used"]["tokens"] == 11 * CHAT_TOKENS
    time.sleep(1.0)  # give a (wrongly) repeated alert time to land before counting
    assert [r[0] for r in collector.query(sql)] == ["at_risk", "over_budget"]


def test_tokenbook_budgets_without_a_collector_reads_budget_events(collector: CollectorProcess) -> None:
    assert collector.stop() == 0
    done = subprocess.run(
        [sys.executable, "-m", "tokenbook", "budgets", "--tenant", "acme", "--format", "json",
         "--data-dir", str(collector.data_dir)],
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    assert "no running collector" in done.stderr
    rows = {r["rule"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert (rows["daily"]["state"], rows["daily"]["used_tokens"]) == ("over_budget", 1650)
    assert rows["ContractAnalyzer"]["subject"] == "tenant=acme, context=sess_xyz789"


def test_a_redelivery_the_dedup_memory_forgot_is_not_counted_twice(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """dedup.max_keys: 5, so the first spans are forgotten by the time they are sent again; the
    counters still agree with the ledger's views (a restart with warm_hours: 0 forgets everything)."""
    budgets_cfg = {"quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 10**9}}]}
    c = CollectorProcess(
        tmp_path_factory.mktemp("forgotten") / "data",
        budgets=budgets_cfg,
        dedup={"max_keys": 5, "warm_hours": 0},
    ).start()
    try:
        factory = SpanFactory()
        first = factory.chats(4, tenant="forgot")
        send(c, first)
        for _ in range(3):
            send(c, factory.chats(4, tenant="forgot"))  # evicts the first spans from the dedup memory
        c.wait_for(
            "SELECT sum(input_tokens + output_tokens) FROM v_calls WHERE tenant_id = 'forgot'", 16 * 150
        )
        send(c, first)  # re-delivered after the memory forgot them
        time.sleep(3)  # the check against the ledger runs on the budgets' one-second tick
        assert daily(c, "forgot")["used"]["tokens"] == 16 * 150
        assert (
            c.scalar("SELECT sum(input_tokens + output_tokens) FROM v_calls WHERE tenant_id = 'forgot'")
            == 2400
        )
        assert c.stop() == 0
        c.start()  # warm_hours: 0 -> the memory starts empty; the counters are rebuilt from the ledger
        send(c, first)
        time.sleep(3)
        assert daily(c, "forgot")["used"]["tokens"] == 16 * 150
        with urllib.request.urlopen(f"{c.admin_url}/metrics", timeout=10) as r:
            assert "tokenbook_budget_redelivered_total 4" in r.read().decode()
    finally:
        if c.proc is not None:
            assert c.stop() == 0
