"""Alert claims against a real store (embedded, or the HTTP test server): each crossing is delivered
by one collector of a fleet, once, even when it is queued twice, when its winner dies before
recording it, when collectors trip the same tenant in neighbouring buckets, and when the collector
that sees it has just restarted (its claims go to the connected store, never to a stand-in)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import call, inside_the_day, record_events
from tests.collector.webhook_receiver import WebhookReceiver
from tokenbook.collector.budgets import BudgetRuntime, alerts, parse_budgets
from tokenbook.collector.budgets.breaker import BurnRateBreaker
from tokenbook.collector.budgets.claims import EventClaims
from tokenbook.collector.budgets.events import RESET, TRIPPED, BudgetEvent
from tokenbook.collector.service import _StoreHandle
from tokenbook.collector.storage.store import Store

NOW = inside_the_day()  # a daily window holds the test's times, even in a run across midnight
DAY = NOW.replace(hour=0, minute=0, second=0)


def crossing(state: str = "over_budget", tenant: str = "acme") -> BudgetEvent:
    return BudgetEvent(
        event_time=NOW,
        kind="quota",
        rule="daily",
        state=state,
        previous_state="within_budget",
        enforcement="hard",
        subject=(("tenant", tenant),),
        window="1d",
        window_start=DAY,
        window_end=DAY + timedelta(days=1),
        used_tokens=1200,
        limit_tokens=1000,
        used_cost=Decimal(0),
        limit_cost=None,
        currency="USD",
    )


class Later:
    """A monotonic clock the test moves on (when set-aside events are looked at again)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def claims(store: Store, name: str, **kw: Any) -> EventClaims:
    return EventClaims(store, name, sleep=lambda _: None, **kw)


def test_each_crossing_is_delivered_by_one_collector(store: Store) -> None:
    event = crossing()
    later = Later()
    a, b = claims(store, "collector-a", clock=later), claims(store, "collector-b")
    assert b.claim([event]) == [event]  # b claims first
    assert a.claim([event]) == [] and a.aside == 1  # a waits behind b's claim
    record_events(store, [event])  # b delivered it
    later.now += a.takeover
    assert a.recheck() == [] and a.aside == 0 and a.lost == 1  # recorded: a drops it


def test_an_event_queued_twice_is_delivered_once(store: Store) -> None:
    event = crossing()
    a = claims(store, "collector-a")
    assert a.claim([event, event]) == [event]
    assert a.claim([event]) == []  # published again (e.g. a counter re-created): not delivered again


def test_a_claim_never_recorded_is_taken_over(store: Store) -> None:
    """The winner was killed between its claim and its record: after the take-over time another
    collector claims the event again and delivers it, once."""
    event = crossing()
    dead, b = claims(store, "collector-dead"), claims(store, "collector-b", takeover=0.5)
    assert dead.claim([event]) == [event]  # ... and the process dies before recording it
    assert b.claim([event]) == [] and b.aside == 1
    assert b.recheck() == []  # not yet: the dead collector's claim is still live
    time.sleep(0.6)
    assert b.recheck() == [event] and b.taken_over == 1
    assert b.recheck() == [] and b.claim([event]) == []


def test_overlapping_breaker_trips_are_delivered_once(store: Store) -> None:
    """Two collectors trip the same tenant in neighbouring buckets (aligned trips, two event IDs):
    one trip is delivered; so is only the reset of the trip that was recorded."""
    cfg, problems = parse_budgets({"breaker": {"enabled": True, "cooldown": "5m"}})
    assert problems == []
    breaker = BurnRateBreaker(cfg.breaker, aligned=True)

    def trip(at: datetime, state: str = TRIPPED) -> BudgetEvent:
        return BudgetEvent(
            event_time=at, kind="breaker", rule="breaker", state=state, previous_state="ok",
            enforcement="hard", subject=(("tenant", "acme"),), window="60s", window_start=at,
            window_end=at + timedelta(minutes=5), used_tokens=2000, limit_tokens=1000,
            used_cost=Decimal(0), limit_cost=None, currency="",
        )  # fmt: skip

    start = datetime.fromtimestamp(breaker.bucket_start(breaker.bucket(NOW.timestamp())), tz=UTC)
    first, second = trip(start + timedelta(seconds=10)), trip(start)
    assert first.event_id != second.event_id
    later = Later()
    a = claims(store, "collector-a", related=breaker.overlapping_trips)
    b = claims(store, "collector-b", related=breaker.overlapping_trips, clock=later)
    assert a.claim([first]) == [first]
    assert b.claim([second]) == [] and b.aside == 1  # a later claim of an overlapping trip
    record_events(store, [first])
    later.now += b.takeover
    assert b.recheck() == [] and b.aside == 0
    assert a.claim([trip(first.window_start, RESET)]) == [trip(first.window_start, RESET)]
    assert b.claim([trip(second.window_start, RESET)]) == []  # its trip was never recorded


def test_a_restarted_collector_claims_its_catch_up_crossings_in_the_connected_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector creates its budgets before the store is up, with a stand-in that raises until it
    is; `start` gets the connected store. A crossing another collector has claimed (and is
    delivering) is not delivered again; once that claim is abandoned, it is delivered once."""
    raw = {
        "quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 1000}, "enforcement": "hard"}],
        "fleet_sync": "100ms",
    }
    store.write([call(NOW, f"{i:016x}") for i in range(8)], [])  # 1200 tokens
    at_risk, over = crossing("at_risk"), crossing("over_budget")
    other = claims(store, "collector-other")
    assert other.claim([at_risk, over]) == [at_risk, over]  # delivering, not recorded yet
    handle = _StoreHandle(store.database)  # not connected: every use raises StoreUnavailable
    # The product's intervals, shortened for the test: the dispatcher looks at the events set aside
    # every 0.1 s when idle (1 s), a claim settles for 0.1 s (0.5 s), and two readings 0.2 s apart
    # confirm a crossing (2 s).
    monkeypatch.setattr(alerts, "_RECHECK_S", 0.1)
    with WebhookReceiver() as hook:
        cfg, problems = parse_budgets({**raw, "alerts": {"webhook": {"url": hook.url, "backoff": "10ms"}}})
        assert problems == []
        runtime = BudgetRuntime(cfg, handle, fleet=True)
        assert runtime.claims is not None
        runtime.evaluator.confirm = 0.2
        runtime.claims.settle = 0.1
        # the other collector's claims stay live this long: long enough for the first confirmed
        # reconciliation to set the crossings aside on a loaded machine
        runtime.claims.takeover = 60.0
        runtime.start(store)
        deadline = time.monotonic() + 55
        while runtime.claims.aside < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runtime.claims.aside == 2 and hook.requests == []  # set aside behind the live claims
        assert store.query(f"SELECT count() FROM {store.database}.budget_events")[2] == [(0,)]
        # The other collector never records them. Rather than wait out the 60 s, claims are live for
        # 1 s from here on (a claim of this collector outlives its settle time, 0.1 s; one that did not
        # would be set aside and claimed again) and this collector's clock is 60 s on: the events set
        # aside are due to be looked at again, and are taken over once the other collector's claims
        # are 1 s old.
        runtime.claims.takeover = 1.0
        runtime.claims._clock = lambda: time.monotonic() + 60.0
        hook.wait_for(2, timeout=60)  # taken over
        time.sleep(0.3)  # three more looks at the events set aside: none is delivered again
        runtime.stop()
    assert sorted(d["state"] for d in hook.bodies(ok_only=False)) == ["at_risk", "over_budget"]
    assert {d["event_id"] for d in hook.bodies()} == {at_risk.event_id, over.event_id}
    assert runtime.claims.taken_over == 2 and runtime.claims.unclaimed == 0
    assert store.query(f"SELECT count() FROM {store.database}.budget_events")[2] == [(2,)]
