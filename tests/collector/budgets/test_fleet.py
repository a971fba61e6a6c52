"""Fleet-wide counters: evaluators sharing one ClickHouse (embedded, or the HTTP test server) agree on
the fleet's totals after a reconciliation, count a span re-sent to the other collector once, count
their accepted-but-unstored calls once, decide crossings on two agreeing readings (never on a
transient double count), and feed the breaker the fleet's burn."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.collector.budgets.budget_rows import call, inside_the_day, record_events
from tokenbook.collector.budgets import BudgetsConfig, parse_budgets
from tokenbook.collector.budgets.counters import CONFIRM_S, Usage
from tokenbook.collector.budgets.evaluator import BudgetEvaluator, FleetUsage
from tokenbook.collector.budgets.events import BudgetEvent
from tokenbook.collector.budgets.fleet import FleetSync
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.store import Store

NOW = inside_the_day()  # a daily window holds the test's times, even in a run across midnight


def config(**extra: Any) -> BudgetsConfig:
    raw: dict[str, Any] = {
        "quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 1000}, "enforcement": "hard"}],
        "budgets": [{"name": "session", "limit": {"tokens": 400}}],
        **extra,
    }
    cfg, problems = parse_budgets(raw)
    assert problems == []
    return cfg


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()


class Collector:
    """One collector's budgets: a fleet evaluator, its fleet sync and what it published."""

    def __init__(self, store: Store, clock: Clock | None = None, **extra: Any) -> None:
        self.store = store
        self.clock = clock or Clock(NOW)
        self.events: list[BudgetEvent] = []
        self.evaluator = BudgetEvaluator(
            config(**extra), publish=self.events.append, clock=self.clock, fleet=True
        )
        self.fleet = FleetSync(self.evaluator, 2.0, clock=self.clock)

    def accept(self, calls: list[CallRow]) -> None:
        self.evaluator.observe(calls)
        self.fleet.note(calls)

    def store_calls(self, calls: list[CallRow]) -> None:
        self.store.write(calls, [])

    def sync(self, times: int = 1) -> None:
        """Reconcile `times` times, `CONFIRM_S` apart: a crossing is decided on the second."""
        for _ in range(times):
            self.clock.now += timedelta(seconds=CONFIRM_S)
            self.fleet.sync(self.store)

    def tokens(self, rule: str = "daily", **query: str) -> int:
        doc = self.evaluator.status({"tenant": "acme", **query})
        (entry,) = [e for e in doc["quotas"] + doc["budgets"] if e["rule"] == rule]
        used: int = entry["used"]["tokens"]
        return used

    def crossings(self) -> list[tuple[str, str, int]]:
        return [(e.rule, e.state, e.used_tokens) for e in self.events]


def calls(prefix: str, n: int, context: str = "ctx-1", tenant: str = "acme") -> list[CallRow]:
    return [
        call(NOW - timedelta(seconds=i), f"{prefix}{i:015x}", context=context, tenant=tenant)
        for i in range(n)
    ]


def test_counters_converge_on_the_fleet_total_and_each_span_counts_once(store: Store) -> None:
    a = Collector(store)
    b = Collector(store, a.clock)
    mine, theirs = calls("a", 4), calls("b", 3)  # 600 and 450 tokens
    a.accept(mine)
    a.store_calls(mine)
    b.accept(theirs)
    b.store_calls(theirs[:2])  # the third is accepted by b, not stored yet
    assert (a.tokens(), b.tokens()) == (600, 450)
    assert a.events == b.events == []  # live counts alone never alert in a fleet
    a.sync()
    b.sync()
    # a sees b's two stored calls (not the unstored one); b counts its unstored call from memory
    assert (a.tokens(), b.tokens()) == (900, 1050)
    assert a.events == b.events == []  # one reading: nothing confirmed yet
    a.sync()
    b.sync()
    # confirmed by the second reading; b's jump from within to over is two crossings
    assert b.crossings() == [
        ("daily", "at_risk", 1050),
        ("daily", "over_budget", 1050),
        ("session", "at_risk", 1050),
        ("session", "over_budget", 1050),
    ]
    assert a.crossings() == [
        ("daily", "at_risk", 900),
        ("session", "at_risk", 900),
        ("session", "over_budget", 900),
    ]
    b.store_calls(theirs[2:])
    a.sync()
    result = b.fleet.sync(store)
    assert (a.tokens(), b.tokens()) == (1050, 1050)
    assert result.remembered == 0  # every remembered span is stored: counted from the ledger now
    assert a.tokens("session", context="ctx-1") == b.tokens("session", context="ctx-1") == 1050
    # a span that a stored reaches b (a re-send to another collector): b counts it live, then once
    resent = mine[0]._replace(version=5)
    b.accept([resent])
    assert b.tokens() == 1200
    b.store_calls([resent])
    b.sync()
    a.sync()
    assert (a.tokens(), b.tokens()) == (1050, 1050)
    b.sync()  # forgotten from memory now: the ledger counts it once
    assert b.tokens() == 1050
    assert a.crossings()[3:] == [("daily", "over_budget", 1050)]
    assert {e.event_id for e in a.events} == {e.event_id for e in b.events}  # the same crossings


def read(c: Collector, *tokens: int, every: float = 0.5) -> None:
    """Reconciliations reading these daily usages of acme, `every` seconds apart."""
    key = (0, ("acme",), NOW.replace(hour=0, minute=0, second=0))
    for n in tokens:
        c.clock.now += timedelta(seconds=every)
        c.evaluator.reconcile(FleetUsage({key: Usage(n, Decimal(0), 0)}))


def test_a_transient_double_count_never_raises_a_crossing(store: Store) -> None:
    """A double-recorded call split across collectors is billed twice in the ledger until a decision
    pass settles it (within a second): readings past a threshold for less than `CONFIRM_S` do not
    alert."""
    c = Collector(store)
    read(c, 750, 900, 900, 900, 750, 750)  # 750 + a call counted twice for 1.5 s
    assert c.events == []
    read(c, 1200, 1200, 1200, 1200)
    assert c.events == []  # 1.5 s past both thresholds
    read(c, 1200)  # 2 s: both crossings, once each
    assert [(e.state, e.previous_state, e.used_tokens) for e in c.events] == [
        ("at_risk", "within_budget", 1200),
        ("over_budget", "at_risk", 1200),
    ]
    read(c, 1200, 1350)
    assert len(c.events) == 2


def test_a_crossing_is_reported_at_the_lowest_usage_of_its_readings(store: Store) -> None:
    c = Collector(store)
    read(c, 1350, 1200, 1200, 1200, 1350, every=0.5)  # one call counted twice, then settled
    assert [(e.state, e.used_tokens) for e in c.events] == [("at_risk", 1200), ("over_budget", 1200)]


def test_the_breaker_sees_the_fleets_burn_and_trips_once_for_it(store: Store) -> None:
    """Each collector receives half of a spike, under the cap; the fleet's burn is over it. Both trip,
    in the same bucket: the same trip (one event ID), so the fleet alerts it once."""
    start = NOW.replace(second=0)  # a breaker bucket (10 s) starts here
    clock = Clock(start)
    breaker = {"breaker": {"enabled": True, "window": "60s", "baseline": "10m", "max_tokens": 1000,
                           "min_tokens": 10**9, "cooldown": "5m"}}  # fmt: skip
    a, b = Collector(store, clock, **breaker), Collector(store, clock, **breaker)

    def reconcile() -> None:  # both collectors, CONFIRM_S after the previous round
        clock.now += timedelta(seconds=CONFIRM_S)
        a.fleet.sync(store)
        b.fleet.sync(store)

    a.fleet.sync(store)
    b.fleet.sync(store)
    spike_a = [c._replace(ingested_at=start) for c in calls("a", 4, tenant="initech")]  # 600 tokens
    spike_b = [c._replace(ingested_at=start) for c in calls("b", 4, tenant="initech")]
    a.accept(spike_a)
    b.accept(spike_b)
    assert a.evaluator.status({"tenant": "initech"})["breaker"]["burn_tokens"] == 600  # its own half
    a.store_calls(spike_a)
    reconcile()  # a: 600 (b's half is only in b's memory); b: 1200, a first reading over the cap
    b.store_calls(spike_b)
    reconcile()  # b trips; a: 1200, its first reading over

    def trips_of(c: Collector) -> list[BudgetEvent]:
        return [e for e in c.events if e.kind == "breaker"]

    assert trips_of(a) == [] and [e.state for e in trips_of(b)] == ["tripped"]
    reconcile()  # a trips
    trips = trips_of(a) + trips_of(b)
    assert [(e.state, e.used_tokens, e.limit_tokens) for e in trips] == [("tripped", 1200, 1000)] * 2
    assert trips[0].event_id == trips[1].event_id  # the same trip: one alert for the fleet
    for c in (a, b):
        doc = c.evaluator.status({"tenant": "initech"})
        assert doc["allowed"] is False and "breaker" in doc["denied_by"]
        assert doc["breaker"]["burn_tokens"] == 1200


def test_a_trip_recorded_by_another_collector_is_adopted(store: Store) -> None:
    clock = Clock(NOW)
    breaker = {"breaker": {"enabled": True, "window": "60s", "baseline": "10m", "max_tokens": 1000,
                           "min_tokens": 10**9, "cooldown": "5m"}}  # fmt: skip
    a, b = Collector(store, clock, **breaker), Collector(store, clock, **breaker)
    spike = [c._replace(ingested_at=NOW) for c in calls("a", 7, tenant="initech")]
    a.accept(spike)
    a.store_calls(spike)
    a.sync(2)
    (trip,) = [e for e in a.events if e.kind == "breaker"]
    record_events(store, [trip])  # a delivered it
    clock.now += timedelta(minutes=2)  # the spike left b's window: b alone would not trip
    b.sync()
    doc = b.evaluator.status({"tenant": "initech"})
    assert trip.window_end is not None
    assert doc["breaker"]["state"] == "tripped" and doc["breaker"]["until"] == trip.window_end.isoformat()
    assert b.events == []
    clock.now += timedelta(minutes=3, seconds=1)  # the cool-down ends: both reset the same trip
    a.evaluator.tick()
    b.evaluator.tick()
    resets = [e for e in a.events + b.events if e.state == "reset"]
    assert len(resets) == 2 and resets[0].event_id == resets[1].event_id


def test_a_full_reconciliation_reads_the_contexts_of_the_last_context_ttl_not_every_context(
    store: Store,
) -> None:
    """A budget counts the contexts active within `budgets.context_ttl` (as a restart's rebuild does):
    a reconciliation that reads every subject does not bring back a context idle for longer, which
    would evict live counters, could alert its old crossing again, and reads the whole ledger."""
    long_ago = NOW - timedelta(days=2)
    store.write(
        [call(long_ago, f"a{i:015x}", context="long-ago", ingested_at=long_ago) for i in range(3)], []
    )
    store.write(calls("b", 2, context="ctx-now"), [])
    c = Collector(store)
    c.sync()  # the first reconciliation reads every subject
    contexts = {e["subject"]["context"] for e in c.evaluator.states()["budgets"]}
    assert contexts == {"ctx-now"}
    assert c.tokens("session", context="ctx-now") == 2 * 150
