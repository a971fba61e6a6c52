"""Ledger rows and budget events for the budget tests and the budgets dashboard test. Not a test module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenbook.collector.budgets.alerts import AlertDispatcher
from tokenbook.collector.budgets.events import EPOCH, BudgetEvent
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.store import Store

#: How far from a UTC day's start and end `inside_the_day` keeps the tests' "now".
DAY_MARGIN = timedelta(minutes=10)

RATE_IN = Decimal("0.0000025")  # USD per input token
RATE_OUT = Decimal("0.00001")


def inside_the_day(now: datetime | None = None) -> datetime:
    """`now` (default: the current UTC time, whole seconds), moved back by twice `DAY_MARGIN` when it is
    within `DAY_MARGIN` of a UTC day's start or end, so that a test's times a few minutes either side
    of it fall in one daily window whenever the test runs (a run across midnight included)."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if now - start < DAY_MARGIN or start + timedelta(days=1) - now <= DAY_MARGIN:
        return now - 2 * DAY_MARGIN
    return now


def call(
    ts: datetime,
    span: str,
    *,
    tenant: str = "acme",
    context: str = "ctx-1",
    tokens: tuple[int, int] = (100, 50),
    priced: bool = True,
    trace: str = "0" * 31 + "1",
    **fields: Any,
) -> CallRow:
    """A chat call of `tokens` (input, output) priced at RATE_IN / RATE_OUT, or unpriced."""
    inp, out = tokens
    parts = (inp * RATE_IN, out * RATE_OUT, Decimal(0), Decimal(0))
    costs: tuple[Decimal | None, ...] = parts if priced else (None,) * 4
    total = sum(parts, Decimal(0)) if priced else None
    row = CallRow(
        timestamp=ts,
        trace_id=trace,
        span_id=span,
        parent_span_id="",
        context_id=context,
        workflow_name="agent",
        workflow_id="",
        tenant_id=tenant,
        user_id="alice",
        project_id="support",
        team_id="team-a",
        feature="chat",
        service_name="svc",
        tags={"env": "prod"},
        provider="openai",
        model="gpt-4o",
        operation="chat",
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        input_cost=costs[0],
        output_cost=costs[1],
        cache_read_cost=costs[2],
        cache_write_cost=costs[3],
        total_cost=total,
        currency="USD",
        price_status="priced" if priced else "unpriced",
        price_source="test",
        client_cost=None,
        usage_issue="",
        attempt=0,
        status="ok",
        error_type="",
        duration_ms=1.0,
        ingested_at=ts,
        version=1,
    )
    return row._replace(**fields)


def seed_events(now: datetime) -> list[BudgetEvent]:
    """Crossings of this month for the dashboard: acme at risk then over its quota, a budget, a breaker."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)

    def quota(state: str, previous: str, tenant: str, used: int, at: datetime) -> BudgetEvent:
        return BudgetEvent(
            event_time=at,
            kind="quota",
            rule="monthly-tokens",
            state=state,
            previous_state=previous,
            enforcement="hard",
            subject=(("tenant", tenant),),
            window="calendar_month",
            window_start=month,
            window_end=(month + timedelta(days=32)).replace(day=1),
            used_tokens=used,
            limit_tokens=10_000,
            used_cost=Decimal("0.125"),
            limit_cost=Decimal("1.00"),
            currency="USD",
        )

    first = month + (now - month) / 3
    return [
        quota("at_risk", "within_budget", "acme", 8_100, first),
        quota("over_budget", "at_risk", "acme", 10_050, first + (now - first) / 2),
        quota("at_risk", "within_budget", "globex", 8_500, first + (now - first) / 3),
        BudgetEvent(
            event_time=first + timedelta(minutes=1),
            kind="budget",
            rule="session-cap",
            state="over_budget",
            previous_state="within_budget",
            enforcement="soft",
            subject=(("tenant", "acme"), ("context", "ticket-1")),
            window="context",
            window_start=EPOCH,
            window_end=None,
            used_tokens=142_350,
            limit_tokens=100_000,
            used_cost=Decimal("0.5"),
            limit_cost=None,
            currency="USD",
        ),
        BudgetEvent(
            event_time=first + timedelta(minutes=2),
            kind="breaker",
            rule="breaker",
            state="tripped",
            previous_state="ok",
            enforcement="hard",
            subject=(("tenant", "acme"),),
            window="60s",
            window_start=first + timedelta(minutes=2),
            window_end=first + timedelta(minutes=7),
            used_tokens=500_000,
            limit_tokens=100_000,
            used_cost=Decimal(0),
            limit_cost=None,
            currency="",
        ),
    ]


def record_events(store: Store, events: list[BudgetEvent]) -> None:
    """Write `events` through the alert dispatcher's table sink (no log, no webhook)."""
    sink = AlertDispatcher(log=False, webhook=None, store=store)
    for event in events:
        sink.deliver(event)


def seed_budget_events(store: Store, now: datetime) -> list[BudgetEvent]:
    """Write `seed_events(now)` to `budget_events` (`record_events`)."""
    events = seed_events(now)
    record_events(store, events)
    return events


#: The columns each panel of dashboards/budgets.json returns (tests/test_dashboards.py checks them).
BUDGET_PANEL_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("tokenbook-budgets", "Crossings in range"): ("at_risk", "over_budget", "breaker_trips"),
    ("tokenbook-budgets", "Subjects over budget now"): ("hard", "soft"),
    ("tokenbook-budgets", "Tenants tripped now"): ("tripped",),
    ("tokenbook-budgets", "Crossings over time"): ("time", "state", "crossings"),
    ("tokenbook-budgets", "Top consumers against their quota"): (
        *("rule", "kind", "subject", "state", "enforcement", "used_tokens", "limit_tokens", "tokens_pct"),
        *("used_cost", "limit_cost", "cost_pct", "currency", "reset_at"),
    ),
    ("tokenbook-budgets", "Current states"): (
        *("kind", "rule", "subject", "state", "enforcement", "used_tokens", "limit_tokens", "used_cost"),
        *("limit_cost", "currency", "reset_at", "last_crossing"),
    ),
    ("tokenbook-budgets", "Alert log"): (
        *("event_time", "kind", "rule", "tenant_id", "state", "previous_state", "message"),
    ),
}
