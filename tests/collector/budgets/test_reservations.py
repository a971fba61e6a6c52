"""Reservations in the budget evaluator: holds checked and taken under the counting lock, settled by the
call that carries the reservation ID, released early or on expiry, bounded in number, and reported in
every ``remaining`` of the gateway."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import RATE_IN, RATE_OUT, call
from tests.collector.budgets.test_evaluator import Clock, evaluator
from tokenbook.collector.budgets import BudgetRuntime, parse_budgets
from tokenbook.collector.budgets.evaluator import GRANTED
from tokenbook.genai.semconv import TB

HARD = {"name": "daily", "window": "1d", "limit": {"tokens": 1000}, "enforcement": "hard"}
ACME = {"tenant": "acme"}


def settled_by(ts: datetime, span: str, reservation: str, tokens: tuple[int, int], **fields: Any) -> Any:
    return call(ts, span, tokens=tokens, tags={"env": "prod", TB.RESERVATION_ID: reservation}, **fields)


def test_holds_count_against_the_limit_and_settle_to_the_actual_usage() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [HARD]}, clock)
    outcome, first = ev.reserve(ACME, tokens=600, cost=None, currency="USD", ttl=60)
    assert outcome == GRANTED and first["granted"] is True
    (quota,) = first["quotas"]
    assert quota["held"] == {"tokens": 600, "cost": "0"} and quota["remaining"]["tokens"] == 400
    # 600 held + 500 > 1000: refused, with the state; 400 fits exactly (the limit itself is allowed).
    outcome, refused = ev.reserve(ACME, tokens=500, cost=None, currency="USD", ttl=60)
    assert (outcome, refused["granted"], refused["denied_by"], refused["reservation"]) == (
        "denied",
        False,
        ["daily"],
        None,
    )
    outcome, second = ev.reserve(ACME, tokens=400, cost=None, currency="USD", ttl=60)
    assert outcome == GRANTED
    # The call of the first reservation used 150 tokens: counted, and its hold is released.
    rid = first["reservation"]["id"]
    ev.observe([settled_by(clock.now, "a" * 16, rid, (100, 50))])
    (quota,) = ev.status(ACME)["quotas"]
    assert quota["used"]["tokens"] == 150 and quota["held"]["tokens"] == 400
    assert quota["remaining"]["tokens"] == 450
    res = ev.reservation(rid)
    assert res is not None and res.state == "settled" and res.settled_tokens == 150
    assert res.settled_cost == 100 * RATE_IN + 50 * RATE_OUT
    # A re-sent span of a settled reservation changes nothing more.
    ev.observe([settled_by(clock.now, "b" * 16, rid, (10, 0))])
    assert ev.status(ACME)["quotas"][0]["held"]["tokens"] == 400
    assert second["reservation"]["state"] == "open"


def test_a_call_above_its_estimate_counts_in_full_and_releases_the_hold() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, events = evaluator({"quotas": [HARD]}, clock)
    _, doc = ev.reserve(ACME, tokens=100, cost=None, currency="USD", ttl=60)
    ev.observe([settled_by(clock.now, "a" * 16, doc["reservation"]["id"], (800, 300))])
    (quota,) = ev.status(ACME)["quotas"]
    assert (quota["used"]["tokens"], quota["held"]["tokens"], quota["state"]) == (1100, 0, "over_budget")
    assert [e.state for e in events] == ["at_risk", "over_budget"]  # each threshold crossed, once
    outcome, refused = ev.reserve(ACME, tokens=1, cost=None, currency="USD", ttl=60)
    assert outcome == "denied" and refused["state"] == "over_budget"


def test_expired_and_released_reservations_free_capacity() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [HARD]}, clock)
    _, short = ev.reserve(ACME, tokens=700, cost=None, currency="USD", ttl=30)
    assert ev.reserve(ACME, tokens=700, cost=None, currency="USD", ttl=30)[0] == "denied"
    clock.now += timedelta(seconds=31)
    ev.tick()
    assert ev.status(ACME)["quotas"][0]["held"]["tokens"] == 0
    expired = ev.reservation(short["reservation"]["id"])
    assert expired is not None and expired.state == "expired"
    outcome, kept = ev.reserve(ACME, tokens=700, cost=None, currency="USD", ttl=30)
    assert outcome == GRANTED
    released = ev.release(kept["reservation"]["id"])
    assert released is not None and released.state == "released"
    assert ev.reserve(ACME, tokens=1000, cost=None, currency="USD", ttl=30)[0] == GRANTED
    # A late call of a released reservation is counted as any call, and settles nothing.
    ev.observe([settled_by(clock.now, "c" * 16, kept["reservation"]["id"], (10, 0))])
    assert ev.status(ACME)["quotas"][0]["used"]["tokens"] == 10
    assert ev.reservations.outcomes == {"granted": 3, "refused": 1, "expired": 1, "released": 1}


def test_money_holds_use_the_rules_currency_and_soft_rules_never_refuse() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    money = {"name": "spend", "window": "1d", "limit": {"cost": "1.00"}, "enforcement": "hard"}
    soft = {"name": "watch", "window": "1h", "limit": {"tokens": 10}}
    ev, _ = evaluator({"quotas": [money, soft]}, clock)
    assert ev.reserve(ACME, tokens=None, cost=Decimal("0.60"), currency="USD", ttl=60)[0] == GRANTED
    outcome, doc = ev.reserve(ACME, tokens=None, cost=Decimal("0.41"), currency="USD", ttl=60)
    assert outcome == "denied" and doc["denied_by"] == ["spend"]
    # Another currency holds nothing against a USD limit; a tokens-only estimate is refused only when
    # the rule is already over; the soft token quota (10) never refuses.
    assert ev.reserve(ACME, tokens=None, cost=Decimal("5"), currency="EUR", ttl=60)[0] == GRANTED
    outcome, doc = ev.reserve(ACME, tokens=50, cost=None, currency="USD", ttl=60)
    assert outcome == GRANTED
    spend = next(q for q in doc["quotas"] if q["rule"] == "spend")
    assert spend["held"]["cost"] == "0.60" and spend["remaining"]["cost"] == "0.40"


def test_parallel_callers_never_hold_more_than_the_limit() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [HARD]}, clock)
    granted: list[int] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        for _ in range(50):
            outcome, _ = ev.reserve(ACME, tokens=7 + n % 5, cost=None, currency="USD", ttl=60)
            if outcome == GRANTED:
                with lock:
                    granted.append(7 + n % 5)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) <= 1000 and sum(granted) > 1000 - 11
    assert ev.status(ACME)["quotas"][0]["held"]["tokens"] == sum(granted)


def test_the_number_of_open_reservations_is_bounded() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"reservations": {"max_open": 2}}, clock)
    assert [ev.reserve(ACME, tokens=1, cost=None, currency="USD", ttl=60)[0] for _ in range(3)] == [
        GRANTED,
        GRANTED,
        "full",
    ]
    clock.now += timedelta(seconds=61)
    assert ev.reserve(ACME, tokens=1, cost=None, currency="USD", ttl=60)[0] == GRANTED


def test_a_billing_decision_moves_the_settlement_with_the_call() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ev, _ = evaluator({"quotas": [HARD]}, clock)
    _, doc = ev.reserve(ACME, tokens=500, cost=None, currency="USD", ttl=60, calls=2)
    rid = doc["reservation"]["id"]
    first = settled_by(clock.now, "a" * 16, rid, (100, 0))
    ev.observe([first])
    assert ev.status(ACME)["quotas"][0]["held"]["tokens"] == 400
    unbilled = first._replace(price_status="duplicate_layer")
    ev.apply_decisions([(first, unbilled)])  # another span bills that call: taken back
    (quota,) = ev.status(ACME)["quotas"]
    assert (quota["used"]["tokens"], quota["held"]["tokens"]) == (0, 500)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({"attributes": {"tenant": "acme"}}, "reserve tokens and/or cost"),
        ({"attributes": {"colour": "red"}, "tokens": 1}, "unknown key 'colour'"),
        ({"attributes": {"tenant": "acme"}, "cost": 0.5}, "never a float"),
        ({"attributes": {"tenant": "acme"}, "tokens": 1, "ttl": "2h"}, "max_ttl"),
        ({"attributes": {"tenant": "acme"}, "tokens": 1, "limit": 3}, "unknown field(s) limit"),
    ],
)
def test_bad_reservation_requests_are_named(body: Any, message: str) -> None:
    config, problems = parse_budgets({"quotas": [HARD]})
    assert problems == []
    runtime = BudgetRuntime(config, None)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runtime.reserve(body)


def test_reservations_config_is_checked() -> None:
    _, problems = parse_budgets({"reservations": {"ttl": "2h", "max_ttl": "1h", "max_open": 0}})
    assert problems == [
        "budgets.reservations.max_open: must be a positive integer, got 0",
        "budgets.reservations.ttl: must not be longer than reservations.max_ttl",
    ]


def test_a_per_context_budget_holds_per_context() -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    budget = {"name": "per-run", "limit": {"tokens": 500}, "enforcement": "hard"}
    ev, _ = evaluator({"budgets": [budget]}, clock)
    run = {"tenant": "acme", "context": "run-1"}
    assert ev.reserve(run, tokens=300, cost=None, currency="USD", ttl=60)[0] == GRANTED
    outcome, doc = ev.reserve(run, tokens=300, cost=None, currency="USD", ttl=60)
    assert (outcome, doc["denied_by"], doc["budgets"][0]["held"]["tokens"]) == ("denied", ["per-run"], 300)
    other = {"tenant": "acme", "context": "run-2"}
    assert ev.reserve(other, tokens=500, cost=None, currency="USD", ttl=60)[0] == GRANTED
    # Without the context the budget does not apply (as on the gateway endpoint): nothing to hold.
    outcome, doc = ev.reserve(ACME, tokens=10_000, cost=None, currency="USD", ttl=60)
    assert outcome == GRANTED and doc["budgets"] == []
