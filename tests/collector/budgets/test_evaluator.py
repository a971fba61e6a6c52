"""The budget evaluator in memory: crossings alerted once, windows rolling over with an injectable
clock, exact counts from concurrent threads, the burn-rate breaker and the gateway answer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.collector.budgets.budget_rows import call
from tokenbook.collector.budgets import BudgetEvaluator, BudgetEvent, parse_budgets
from tokenbook.collector.ingest.dedup import RecentSpanKeys, span_key


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now.timestamp()


def evaluator(raw: dict[str, Any], clock: Clock) -> tuple[BudgetEvaluator, list[BudgetEvent]]:
    config, problems = parse_budgets(raw)
    assert problems == []
    events: list[BudgetEvent] = []
    return BudgetEvaluator(config, publish=events.append, clock=clock), events


QUOTA = {"name": "daily", "window": "1d", "limit": {"tokens": 1000}, "enforcement": "hard"}


def test_each_crossing_is_alerted_once_at_risk_then_over() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, events = evaluator({"quotas": [QUOTA]}, clock)
    t = clock.now
    for i in range(5):  # 5 x 150 = 750: within
        ev.observe([call(t, f"{i:016x}")])
    assert events == []
    ev.observe([call(t, "a" * 16)])  # 900 >= 800: at_risk
    for i in range(4):  # exactly at the limit (1000) is still at risk; above it is over
        ev.observe([call(t, f"b{i:015x}", tokens=(20, 5))])
    ev.observe([call(t, "c" * 16, tokens=(1, 0))])
    ev.observe([call(t, "d" * 16, tokens=(500, 0))])
    assert [(e.state, e.previous_state, e.used_tokens) for e in events] == [
        ("at_risk", "within_budget", 900),
        ("over_budget", "at_risk", 1001),
    ]
    body = events[1].webhook_body()
    assert body["subject"] == {"tenant": "acme"} and body["limit"] == {"tokens": 1000, "cost": None}
    assert body["window"]["end"] == "2026-03-11T00:00:00+00:00"
    doc = ev.status({"tenant": "acme"})
    assert doc["allowed"] is False and doc["denied_by"] == ["daily"]
    (quota,) = doc["quotas"]
    assert quota["used"]["tokens"] == 1501 and quota["remaining"]["tokens"] == 0


def test_a_jump_past_both_thresholds_records_each_crossing_once() -> None:
    """One batch takes a quota from within_budget to over_budget: the at_risk crossing is recorded
    too (each threshold crossed is one event), and neither is repeated."""
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, events = evaluator({"quotas": [QUOTA]}, clock)
    ev.observe([call(clock.now, "1" * 16, tokens=(500, 0))])
    ev.observe([call(clock.now, "2" * 16, tokens=(600, 0)), call(clock.now, "3" * 16, tokens=(1, 0))])
    ev.observe([call(clock.now, "4" * 16, tokens=(1, 0))])
    assert [(e.state, e.previous_state, e.used_tokens) for e in events] == [
        ("at_risk", "within_budget", 1100),
        ("over_budget", "at_risk", 1100),
    ]
    assert len({e.event_id for e in events}) == 2


def test_window_rollover_resets_counters_and_alerts_again() -> None:
    clock = Clock(datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    ev, events = evaluator({"quotas": [{**QUOTA, "window": "1h"}]}, clock)
    ev.observe([call(clock.now, "1" * 16, tokens=(1000, 100))])
    assert [e.state for e in events] == ["at_risk", "over_budget"]
    clock.now += timedelta(minutes=2)  # the next hour (and the next day)
    assert ev.status({"tenant": "acme"})["quotas"][0]["used"]["tokens"] == 0
    ev.observe([call(clock.now, "2" * 16, tokens=(100, 0))])
    (quota,) = ev.status({"tenant": "acme"})["quotas"]
    assert quota["used"]["tokens"] == 100 and quota["state"] == "within_budget"
    assert quota["reset_at"] == "2026-03-11T01:00:00+00:00"
    ev.observe([call(clock.now, "3" * 16, tokens=(1000, 0))])
    assert [(e.state, e.window_start.hour) for e in events] == [
        ("at_risk", 23), ("over_budget", 23), ("at_risk", 0), ("over_budget", 0)
    ]  # fmt: skip
    # A late call of the previous window still counts there; older ones are out of window.
    ev.observe(
        [call(clock.now - timedelta(minutes=30), "4" * 16), call(clock.now - timedelta(hours=3), "5" * 16)]
    )
    assert ev.out_of_window_calls == 1
    clock.now += timedelta(hours=2)  # two windows later: the old counters are forgotten
    ev.tick()
    assert sum(ev.counter_states().values()) == 0


def test_calendar_month_in_a_time_zone() -> None:
    # 2026-03-31 23:30 UTC is already April 1st in Paris (UTC+2 after the DST change).
    clock = Clock(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    raw = {**QUOTA, "window": "calendar_month", "timezone": "Europe/Paris"}
    ev, _ = evaluator({"quotas": [raw]}, clock)
    ev.observe([call(clock.now, "1" * 16), call(datetime(2026, 3, 31, 21, 59, tzinfo=UTC), "2" * 16)])
    (quota,) = ev.status({"tenant": "acme"})["quotas"]
    assert quota["used"]["tokens"] == 150  # the 21:59 UTC call is March 31st 23:59 in Paris
    assert quota["reset_at"] == "2026-04-30T22:00:00+00:00"


def test_budgets_cap_one_context_and_money_is_decimal() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    raw = {
        "budgets": [{"name": "ContractAnalyzer", "match": {"feature": "chat"}, "limit": {"cost": "0.002"}}]
    }
    ev, events = evaluator(raw, clock)
    for i in range(3):  # each call costs 0.00025 + 0.0005 = 0.00075
        ev.observe([call(clock.now, f"{i:016x}", context="sess_xyz789")])
    ev.observe([call(clock.now, "f" * 16, context="other", priced=False)])
    # 0.0015 is under 80% of the limit; 0.00225 is past both thresholds: two crossings
    assert [(e.state, e.used_cost) for e in events] == [
        ("at_risk", Decimal("0.00225")),
        ("over_budget", Decimal("0.00225")),
    ]
    assert events[1].message == (
        "Budget 'ContractAnalyzer' exceeded cost budget of 0.002 USD per context. "
        "Context ID: sess_xyz789, Actual: 450 tokens, 0.00225 USD."
    )
    other = ev.status({"tenant": "acme", "context": "other"})["budgets"][0]
    assert other["unpriced_calls"] == 1 and other["used"] == {"tokens": 150, "cost": "0"}
    assert ev.status({"tenant": "acme"})["budgets"] == []  # a budget needs the context


def test_match_and_per_select_the_subject() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    raw = {"quotas": [{**QUOTA, "match": {"tags.env": "prod"}, "per": ["tenant", "user"]}]}
    ev, _ = evaluator(raw, clock)
    ev.observe([call(clock.now, "1" * 16), call(clock.now, "2" * 16, tags={"env": "dev"})])
    assert ev.status({"tenant": "acme"})["quotas"] == []  # per needs the user too
    (quota,) = ev.status({"tenant": "acme", "user": "alice"})["quotas"]
    assert quota["used"]["tokens"] == 150 and quota["subject"] == {"tenant": "acme", "user": "alice"}
    assert ev.status({"tenant": "acme", "user": "alice", "tags.env": "dev"})["quotas"] == []


def test_concurrent_senders_with_duplicates_count_exactly_once() -> None:
    """Threads race with overlapping spans through the collector's dedup claim, as the ingest path does."""
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [{**QUOTA, "limit": {"tokens": 10**9}}]}, clock)
    dedup = RecentSpanKeys(1_000_000)
    spans = [call(clock.now, f"{i:016x}", trace=f"{i % 97:032x}") for i in range(4000)]

    def sender(offset: int) -> None:
        for start in range(0, len(spans), 50):  # every thread sends every span: 4 deliveries each
            batch = spans[(start + offset * 50) % len(spans) :][:50]
            added = set(dedup.remember([span_key(c.tenant_id, c.trace_id, c.span_id) for c in batch]))
            ev.observe([c for c in batch if span_key(c.tenant_id, c.trace_id, c.span_id) in added])

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ev.status({"tenant": "acme"})["quotas"][0]["used"]["tokens"] == 150 * 4000


def test_breaker_trips_on_a_spike_over_the_baseline_and_resets_after_cool_down() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    raw = {"breaker": {"enabled": True, "window": "60s", "baseline": "10m", "factor": 5, "min_tokens": 1000,
                       "cooldown": "5m"}}  # fmt: skip
    ev, events = evaluator(raw, clock)
    for minute in range(10):  # a steady 600 tokens a minute
        clock.now += timedelta(minutes=1)
        ev.observe([call(clock.now, f"{minute:016x}", tokens=(400, 200))])
    assert events == [] and ev.status({"tenant": "acme"})["breaker"]["state"] == "ok"
    clock.now += timedelta(seconds=5)
    ev.observe([call(clock.now, "a" * 16, tokens=(3000, 0))])  # 3600 in a minute, 6x the baseline
    assert [(e.kind, e.state) for e in events] == [("breaker", "tripped")]
    doc = ev.status({"tenant": "acme"})
    assert doc["allowed"] is False and doc["state"] == "tripped" and doc["denied_by"] == ["breaker"]
    ev.observe([call(clock.now, "b" * 16, tokens=(3000, 0))])  # still tripped: no second alert
    assert len(events) == 1
    clock.now += timedelta(minutes=5, seconds=1)
    ev.tick()
    assert [(e.kind, e.state) for e in events] == [("breaker", "tripped"), ("breaker", "reset")]
    assert ev.status({"tenant": "acme"})["allowed"] is True


def test_breaker_does_not_trip_a_steady_heavy_tenant_after_a_restart_but_a_spike_still_trips() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    raw = {"breaker": {"enabled": True, "window": "60s", "baseline": "10m", "factor": 5, "min_tokens": 1000,
                       "cooldown": "5m"}}  # fmt: skip
    ev, events = evaluator(raw, clock)  # a collector that just (re)started: no history in memory
    for second in range(0, 15 * 60, 5):  # a steady 60,000 tokens a minute, 60x min_tokens, for 15 min
        clock.now += timedelta(seconds=5)
        ev.observe([call(clock.now, f"{second:016x}", tokens=(4000, 1000))])
        assert ev.status({"tenant": "acme"})["allowed"] is True, f"tripped at {second + 5} s"
    assert events == []
    clock.now += timedelta(seconds=1)
    ev.observe([call(clock.now, "a" * 16, tokens=(400_000, 0))])  # 460,000 in a minute: 7.7x
    assert [(e.kind, e.state) for e in events] == [("breaker", "tripped")]
    assert ev.status({"tenant": "acme"})["denied_by"] == ["breaker"]


def test_breaker_cap_applies_from_the_start() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    raw = {"breaker": {"enabled": True, "window": "60s", "baseline": "10m", "min_tokens": 1000,
                       "max_tokens": 100_000}}  # fmt: skip
    ev, events = evaluator(raw, clock)
    ev.observe([call(clock.now, "1" * 16, tokens=(50_000, 0))])  # over min_tokens, no baseline: ok
    assert events == []
    ev.observe([call(clock.now, "2" * 16, tokens=(50_001, 0))])  # over the cap: trips at once
    assert [(e.state, e.used_tokens, e.limit_tokens) for e in events] == [("tripped", 100_001, 100_000)]


def test_breaker_absolute_cap() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    raw = {"breaker": {"enabled": True, "max_tokens": 500, "min_tokens": 10**9}}
    ev, events = evaluator(raw, clock)
    ev.observe([call(clock.now, "1" * 16, tokens=(400, 0))])
    ev.observe([call(clock.now, "2" * 16, tokens=(101, 0))])
    assert [(e.state, e.used_tokens, e.limit_tokens) for e in events] == [("tripped", 501, 500)]


def test_observe_never_raises_into_ingest() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [QUOTA]}, clock)
    ev.observe([call(clock.now, "1" * 16, timestamp=None)])  # a broken row
    assert ev.errors == 1


PER_USER = {"name": "per-user", "per": ["tenant", "user"], "window": "1d", "limit": {"tokens": 1000}}


class LedgerStub:
    """A ledger answering `subject_usage.sql` with stored usage per user."""

    database = "tokenbook"

    def __init__(self, stored: dict[str, int]) -> None:
        self.stored = stored
        self.asked: list[dict[str, Any]] = []

    def query(self, sql: str, parameters: Any = None) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        assert "subject_usage" in sql or "ingested_at <" in sql
        self.asked.append(dict(parameters))
        return [], [], [(self.stored.get(parameters["rule_subject_1"], 0), Decimal(0), 0)]  # the user


def test_a_flood_of_distinct_users_keeps_at_most_max_subjects_and_evicted_ones_are_rebuilt() -> None:
    """Failed before: one counter per distinct user, without a bound (~1 GiB/min under a flood)."""
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, events = evaluator({"quotas": [PER_USER], "max_subjects": 100}, clock)
    for i in range(5000):
        ev.observe([call(clock.now, f"{i:016x}", user_id=f"u{i}", tokens=(100, 0))])
    assert sum(ev.counter_states().values()) == 100 and ev.evicted == 4900
    # u0 was evicted with 100 tokens; it comes back with 950 more: rebuilt from the ledger, it is over
    ev.observe([call(clock.now, "f" * 16, user_id="u0", tokens=(950, 0))])
    ledger = LedgerStub({"u0": 100})
    while ev.hydrate_pending(ledger):
        pass
    (quota,) = ev.status({"tenant": "acme", "user": "u0"})["quotas"]
    assert quota["used"]["tokens"] == 1050 and quota["state"] == "over_budget"
    assert [e.state for e in events if dict(e.subject).get("user") == "u0"] == ["at_risk", "over_budget"]


def test_states_are_paginated() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [PER_USER]}, clock)
    for i in range(25):
        ev.observe([call(clock.now, f"{i:016x}", user_id=f"u{i:02d}")])
    seen: list[str] = []
    cursor: int | None = 0
    while cursor is not None:
        page = ev.states(limit=10, cursor=cursor)
        assert len(page["quotas"]) <= 10
        seen += [q["subject"]["user"] for q in page["quotas"]]
        cursor = page["next_cursor"]
    assert seen == [f"u{i:02d}" for i in range(25)]


class _Ledger:
    """The ledger as `verify_pending` sees it: (tenant, trace, span) -> oldest stored version."""

    database = "tokenbook"

    def __init__(self, oldest: dict[tuple[str, str, str], int]) -> None:
        self.oldest = oldest
        self.queries = 0

    def query(self, sql: str, parameters: Any = None) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        self.queries += 1
        assert "counted_spans" not in sql and "min(version)" in sql
        rows = [(*k, v) for k, v in self.oldest.items() if k in set(parameters["keys"])]
        return [], [], rows


def test_deferred_calls_the_ledger_already_holds_are_not_counted_again() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [QUOTA]}, clock)
    known = call(clock.now, "1" * 16, version=2000)  # a re-delivery: stored before, at version 1000
    new = call(clock.now, "2" * 16, version=2000)  # never stored: only its own copy (same version)
    unstored = call(clock.now, "3" * 16, version=2000)  # not in storage yet
    ledger = _Ledger(
        {("acme", known.trace_id, known.span_id): 1000, ("acme", new.trace_id, new.span_id): 2000}
    )
    ev.defer([known, new, unstored])
    assert ev.status({"tenant": "acme"})["quotas"][0]["used"]["tokens"] == 0  # not counted before the check
    assert ev.verify_pending(ledger) == 3 and ev.verify_pending(ledger) == 0
    assert ev.status({"tenant": "acme"})["quotas"][0]["used"]["tokens"] == 300
    assert (ev.redelivered, ev.unverified, ledger.queries) == (1, 0, 1)
