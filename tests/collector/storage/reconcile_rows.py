"""A ledger that drifts from tests/testdata/reconcile/ in known ways, for the reconciliation tests and the
worked example of docs/guide/reconciliation.md. Not a test module.

On 2026-03-02 (UTC), against the provider files of that day:

* gpt-4o: 40 traced calls, the provider billed 42 (2 calls billed but never traced);
* o4-mini: 10 calls whose spans carry the visible output only (reasoning tokens missing);
* gpt-4o-mini: tokens match, the provider billed the batch price (half the list price);
* claude-sonnet-4-5: the instrumentation reported no cache reads: the ledger counts them as input;
* claude-haiku-4-5: tokens match, the ledger has no price for the model (unpriced);
* claude-opus-4-1: billed, never traced; claude-3-5-haiku: traced, not on the invoice;
* a cache hit of gpt-4o that made no model call (never compared).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tests.collector.budgets.budget_rows import call
from tokenbook.collector.storage.ledger import CallRow

DATA = Path(__file__).resolve().parents[2] / "testdata" / "reconcile"
DAY = datetime(2026, 3, 2, tzinfo=UTC)
#: USD per token: input, cache read, output
PRICES = {
    "gpt-4o-2024-08-06": (Decimal("0.0000025"), Decimal("0.00000125"), Decimal("0.00001")),
    "o4-mini-2025-04-16": (Decimal("0.0000011"), Decimal("0.000000275"), Decimal("0.0000044")),
    "gpt-4o-mini-2024-07-18": (Decimal("0.00000015"), Decimal("0.000000075"), Decimal("0.0000006")),
    "claude-sonnet-4-5-20250929": (Decimal("0.000003"), Decimal("0.0000003"), Decimal("0.000015")),
    "claude-3-5-haiku-20241022": (Decimal("0.0000008"), Decimal("0.00000008"), Decimal("0.000004")),
}


def model_call(
    n: int,
    provider: str,
    model: str,
    *,
    inp: int,
    out: int,
    cached: int = 0,
    tenant: str = "acme",
    priced: bool = True,
    status: str | None = None,
) -> CallRow:
    """Call number `n` of the day: `inp` input tokens (of which `cached` read from the cache)."""
    ts = DAY + timedelta(minutes=7 * n)
    row = call(ts, f"{n:016x}", trace=f"{n:032x}", tenant=tenant, tokens=(inp, out))
    if not priced:
        costs: tuple[Decimal | None, ...] = (None, None, None, None)
        total = None
    else:
        rate_in, rate_cache, rate_out = PRICES[model]
        parts = ((inp - cached) * rate_in, out * rate_out, cached * rate_cache, Decimal(0))
        costs, total = parts, sum(parts, Decimal(0))
    return row._replace(
        provider=provider,
        model=model,
        cache_read_tokens=cached,
        input_cost=costs[0],
        output_cost=costs[1],
        cache_read_cost=costs[2],
        cache_write_cost=costs[3],
        total_cost=total,
        price_status=status or ("priced" if priced else "unpriced"),
    )


def seed_ledger() -> list[CallRow]:
    """The ledger of 2026-03-02 (see the module docstring)."""
    calls: list[CallRow] = []

    def add(count: int, provider: str, model: str, **kw: object) -> None:
        for _ in range(count):
            calls.append(model_call(len(calls), provider, model, **kw))  # type: ignore[arg-type]

    add(30, "openai", "gpt-4o-2024-08-06", inp=1200, cached=200, out=300)
    add(10, "openai", "gpt-4o-2024-08-06", inp=1200, cached=200, out=300, tenant="globex")
    add(10, "openai", "o4-mini-2025-04-16", inp=800, out=500)
    add(25, "openai", "gpt-4o-mini-2024-07-18", inp=4000, out=800)
    add(20, "anthropic", "claude-sonnet-4-5-20250929", inp=6000, out=400)
    add(10, "anthropic", "claude-haiku-4-5-20251001", inp=3000, out=600, priced=False)
    add(5, "anthropic", "claude-3-5-haiku-20241022", inp=1000, out=200)
    add(1, "openai", "gpt-4o-2024-08-06", inp=1200, out=300, status="cache_hit")
    return calls
