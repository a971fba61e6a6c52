"""Budgets against the real embedded ClickHouse: exact rebuild from the deduplicated ledger, restored
alert states (no repeats after a restart), the budget_events table and a real loopback webhook with
retries and an HMAC signature."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.cli.seed_store import reads_at_most, write_busy_day
from tests.collector.budgets.budget_rows import call, inside_the_day
from tests.collector.webhook_receiver import WebhookReceiver
from tests.stores import Counting
from tokenbook.collector.budgets import BudgetRuntime, BudgetsConfig, parse_budgets
from tokenbook.collector.budgets.evaluator import stored_versions
from tokenbook.collector.budgets.webhook import SIGNATURE_HEADER, sign
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store

SECRET = "0123456789abcdef-secret"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()


def config(webhook: str | None = None, **extra: Any) -> BudgetsConfig:
    raw: dict[str, Any] = {
        "quotas": [
            {
                "name": "daily",
                "window": "1d",
                "limit": {"tokens": 1000, "cost": "0.004"},
                "enforcement": "hard",
            }
        ],
        "budgets": [{"name": "session", "limit": {"tokens": 400}}],
        **extra,
    }
    if webhook is not None:
        raw["alerts"] = {"webhook": {"url": webhook, "secret": SECRET, "backoff": "10ms", "max_attempts": 3}}
    cfg, problems = parse_budgets(raw)
    assert problems == []
    return cfg


NOW = inside_the_day()  # a daily window holds the test's times, even in a run across midnight


def test_rebuild_is_exact_from_the_deduplicated_ledger_plus_unstored_log_rows(store: Store) -> None:
    rows = [call(NOW - timedelta(seconds=i), f"{i:016x}", context=f"c{i % 2}") for i in range(4)]
    store.write(rows, [])
    store.write(rows[:2], [])  # re-delivered
    store.write([rows[2]._replace(version=2)], [])  # re-priced: still one call
    old = call(NOW - timedelta(days=3), "e" * 16)  # before yesterday: not in the quota windows
    store.write([old], [])
    pending = [rows[3], call(NOW, "f" * 16, context="c1"), call(NOW, "f" * 16, context="c1")]
    runtime = BudgetRuntime(config(), store, clock=Clock(NOW))
    result = runtime.start(store, pending)
    runtime.stop()
    assert result is not None and result.pending_calls == 1  # rows[3] is stored; "f" counted once
    quota = runtime.evaluator.status({"tenant": "acme"})["quotas"][0]
    assert quota["used"] == {"tokens": 5 * 150, "cost": "0.003750000000"}
    c1 = runtime.evaluator.status({"tenant": "acme", "context": "c1"})["budgets"][0]
    assert c1["used"]["tokens"] == 3 * 150 and c1["state"] == "over_budget"


def test_a_rebuild_that_ends_after_the_stop_starts_no_thread(store: Store) -> None:
    """At the collector's start the rebuild runs once the receivers serve; a stop may come first (a
    long rebuild), and the rebuild must not start the ticker and the alert delivery after it."""

    def budget_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("tokenbook-budget")]

    before = budget_threads()
    runtime = BudgetRuntime(config(), store, clock=Clock(NOW))
    runtime.stop()
    runtime.start(store)
    assert budget_threads() == before
    assert runtime.evaluator.status({"tenant": "acme"})["quotas"][0]["used"]["tokens"] == 0


def test_restart_restores_alert_states_and_repeats_nothing(store: Store) -> None:
    with WebhookReceiver() as hook:
        first = BudgetRuntime(config(hook.url), store, clock=Clock(NOW))
        first.start(store)
        calls = [call(NOW, f"{i:016x}", context="s1") for i in range(6)]  # 900 tokens, 0.0045 USD
        store.write(calls, [])
        first.observe(calls)
        first.stop()
        states = [(d["rule"], d["state"]) for d in hook.bodies()]
        # daily: at risk on the 5th call (0.00375 >= 80% of 0.004 USD), over on the 6th;
        # session: 300 tokens, then 450 > 400: past both thresholds at once, each crossing alerted.
        assert sorted(states) == [
            ("daily", "at_risk"), ("daily", "over_budget"), ("session", "at_risk"), ("session", "over_budget")
        ]  # fmt: skip
        _, _, rows = store.query(
            f"SELECT rule, state FROM {store.database}.v_budget_events ORDER BY rule, state"
        )
        assert sorted(rows) == sorted(states)
        delivered = len(hook.requests)
        second = BudgetRuntime(config(hook.url), store, clock=Clock(NOW + timedelta(minutes=1)))
        result = second.start(store)
        second.stop()
        assert result is not None and result.catch_up_events == 0 and result.restored_alerts == 2
        assert len(hook.requests) == delivered
        assert second.evaluator.status({"tenant": "acme"})["quotas"][0]["state"] == "over_budget"


def test_a_crossing_never_alerted_is_alerted_at_start(store: Store) -> None:
    store.write([call(NOW, f"{i:016x}", context="s2", tokens=(1000, 100)) for i in range(1)], [])
    with WebhookReceiver() as hook:
        runtime = BudgetRuntime(config(hook.url), store, clock=Clock(NOW))
        result = runtime.start(store)
        runtime.stop()
    assert result is not None and result.catch_up_events == 4  # at_risk and over_budget of each
    assert sorted((d["rule"], d["state"]) for d in hook.bodies()) == [
        ("daily", "at_risk"),
        ("daily", "over_budget"),
        ("session", "at_risk"),
        ("session", "over_budget"),
    ]


def test_webhook_retries_with_backoff_and_signs_the_body(store: Store) -> None:
    with WebhookReceiver(statuses=[503, 500]) as hook:
        runtime = BudgetRuntime(config(hook.url), store, clock=Clock(NOW))
        runtime.start(store)
        runtime.observe([call(NOW, "1" * 16, context="s3", tokens=(2000, 0))])
        runtime.stop()
        assert len(hook.requests) == 6  # the first event took 3 attempts, the three others one each
        headers, body = hook.requests[2]
        assert headers[SIGNATURE_HEADER] == sign(SECRET, body)
        assert [json.loads(b)["event_id"] for _, b in hook.requests[:3]] == [json.loads(body)["event_id"]] * 3
        doc = json.loads(body)
        assert set(doc) == {
            *("event_id", "type", "time", "kind", "rule", "state", "previous_state", "enforcement"),
            *("subject", "window", "used", "limit", "currency", "message"),
        }
    with WebhookReceiver(statuses=[503] * 20) as failing:
        runtime = BudgetRuntime(config(failing.url), store, clock=Clock(NOW))
        runtime.start(store)
        runtime.observe([call(NOW, "2" * 16, context="s4", tokens=(2000, 0))])
        runtime.stop()
        assert len(failing.requests) == 4 * 3  # four events, each bounded by max_attempts
        assert runtime.dispatcher.snapshot()[1] == {"webhook": 4}


def test_an_evicted_counter_is_rebuilt_from_the_ledger(store: Store) -> None:
    """budgets.max_subjects: a counter evicted from memory comes back exact (subject_usage.sql), without
    the layers another span bills (a wrapper, a duplicate instrumentation layer), from its subject's
    calls read by the ledger's sorting key (tenant, then context): 60,000 calls of other tenants and
    contexts in the same hours are not read."""
    busy = NOW - timedelta(minutes=30)
    write_busy_day(store, 60_000, busy, ingested=busy)
    earlier = NOW - timedelta(minutes=5)
    billed = [call(earlier, f"{i:016x}", context=f"c{i}", ingested_at=earlier) for i in range(4)]
    unbilled = [
        call(earlier, f"{i + 4:016x}", context=f"c{i}", ingested_at=earlier, price_status=status)
        for i, status in enumerate(["wrapper", "duplicate_layer"] * 2)
    ]
    store.write(billed + unbilled, [])
    runtime = BudgetRuntime(config(max_subjects=3), store, clock=Clock(NOW))
    runtime.start(store)
    runtime.stop()
    ev = runtime.evaluator
    assert ev.evicted >= 1
    evicted = next(
        f"c{i}"
        for i in range(4)
        if ev.status({"tenant": "acme", "context": f"c{i}"})["budgets"][0]["used"]["tokens"] == 0
    )
    ev.observe([call(NOW, "a" * 16, context=evicted)])
    bounded = Counting(store, reads_at_most(20_000))
    while ev.hydrate_pending(bounded):
        pass
    (budget,) = ev.status({"tenant": "acme", "context": evicted})["budgets"]
    assert budget["used"]["tokens"] == 2 * 150


def test_which_calls_storage_holds_is_read_by_their_identity_not_over_the_ledger(store: Store) -> None:
    """The restart's check of the calls still in the log and the fleet's check of the calls it counts
    from memory (both `stored_versions`) look the calls up by their identity, the ledger's sorting
    key: of 60,000 calls of other tenants, none is read, however many calls are looked up (a trace
    ID's bloom filter stops pruning at a few thousand)."""
    busy = NOW - timedelta(minutes=30)
    write_busy_day(store, 60_000, busy, ingested=busy)
    rng = random.Random(5)  # trace IDs spread as real ones are (no part's min-max excludes them)
    calls = [
        call(NOW - timedelta(seconds=i), f"{i:016x}", trace=f"{rng.getrandbits(128):032x}")
        for i in range(2_000)
    ]
    store.write(calls[:1_500], [])
    store.write([calls[0]._replace(version=3)], [])
    sql = render_query("budgets/stored_versions.sql", store.database)
    _, _, estimate = store.query(f"EXPLAIN ESTIMATE {sql}", {"keys": [c.identity for c in calls]})
    assert sum(int(rows) for _, _, _, rows, _ in estimate) < 20_000  # rows the read selects
    versions = stored_versions(store, calls)
    assert sorted(versions) == sorted((c.trace_id, c.span_id) for c in calls[:1_500])
    assert versions[(calls[0].trace_id, calls[0].span_id)] == 3


def test_the_tests_now_keeps_its_daily_window_a_few_minutes_either_side() -> None:
    day = datetime(2026, 12, 5, tzinfo=UTC)
    late = timedelta(hours=23, minutes=59, seconds=30)  # just before midnight: 20 minutes earlier
    for clock, expected in [
        (day + timedelta(hours=12), day + timedelta(hours=12)),
        (day + timedelta(minutes=3), day - timedelta(minutes=17)),  # just after midnight: the day before
        (day + late, day + late - timedelta(minutes=20)),
    ]:
        now = inside_the_day(clock)
        assert now == expected
        assert (now - timedelta(minutes=5)).date() == now.date() == (now + timedelta(minutes=5)).date()
