"""Re-pricing stored calls after a price change, without double counting.

`reprice` reads the deduplicated calls of a time range, prices each again from its stored tokens,
service tier and one-hour cache writes with a `PriceCatalog`, bills it again with the tenants'
`PriceBooks`, and writes back only the calls whose list or billed costs, currency, status or book
changed, with a higher ``version``: the ReplacingMergeTree keeps the newest row of a span, so every
total changes once, never doubles, and a second run changes nothing. The aggregates are then
recomputed.

It runs in the CLI (`tokenbook reprice` on a stopped embedded store or a server) and in the collector
(`POST /v1/reprice` on the admin API, after the collector reloaded its price overrides).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store
from tokenbook.genai.billing import NO_COSTS, STATUS_CACHE_HIT, money
from tokenbook.genai.pricing.rates import Cost
from tokenbook.genai.usage import Usage

if TYPE_CHECKING:  # the catalog (and its price data) loads only where prices are computed
    from tokenbook.genai.pricing.books import PriceBooks
    from tokenbook.genai.pricing.catalog import PriceCatalog

__all__ = ["REPRICE_PATH", "RepriceResult", "price_again", "reprice"]

REPRICE_PATH = "/v1/reprice"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_BATCH = 10_000  # rows per insert


@dataclass(frozen=True)
class RepriceResult:
    """What `reprice` did (or, with ``dry_run``, would do): calls examined, calls given a new cost,
    the summed list cost of the changed calls before and after, how many of them lose their price, and
    their summed billed cost before and after."""

    examined: int
    changed: int
    old_total: Decimal = Decimal(0)
    new_total: Decimal = Decimal(0)
    lost_price: int = 0
    old_billed: Decimal = Decimal(0)
    new_billed: Decimal = Decimal(0)


def _cost_of(call: CallRow) -> tuple[Any, ...]:
    return (
        call.input_cost,
        call.output_cost,
        call.cache_read_cost,
        call.cache_write_cost,
        call.total_cost,
        call.currency,
        call.price_status,
        call.cache_write_1h_cost,
        call.billed_input_cost,
        call.billed_output_cost,
        call.billed_cache_read_cost,
        call.billed_cache_write_cost,
        call.billed_cache_write_1h_cost,
        call.billed_cost,
        call.price_book,
        call.price_book_entry,
    )


def price_again(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    catalog: PriceCatalog,
    *,
    books: PriceBooks | None = None,
    version_floor: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[CallRow], RepriceResult]:
    """The calls of `rows` (``reprice_calls.sql`` rows) whose cost `catalog` (list prices) and `books`
    (billed; none: billed at list price) change, re-priced, and the summary of the change. Writes
    nothing."""
    from tokenbook.genai.pricing.books import PriceBooks

    books = books or PriceBooks()
    changed: list[CallRow] = []
    old_total = new_total = old_billed = new_billed = Decimal(0)
    lost = 0
    for done, raw in enumerate(rows, 1):
        call = CallRow(**dict(zip(columns, raw, strict=True)))
        usage = Usage(
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_read_tokens=call.cache_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            reasoning_tokens=call.reasoning_tokens,
            present=True,
            cache_write_1h_tokens=call.cache_write_1h_tokens,
        )
        at = call.timestamp
        quote = catalog.quote(
            call.provider,
            call.model,
            usage,
            (at - _EPOCH) // _MICROSECOND * 1000,
            cache_hit=call.price_status == STATUS_CACHE_HIT,
            tier=call.service_tier,
        )
        cost = Cost.of_quote(quote)
        bill = books.bill(call.tenant_id, call.provider, call.model, call.service_tier, at, usage, quote)
        billed = NO_COSTS if bill.picos is None else bill.picos.costs()
        new = call._replace(
            input_cost=cost.input,
            output_cost=cost.output,
            cache_read_cost=cost.cache_read,
            cache_write_cost=cost.cache_write,
            total_cost=cost.total,
            currency=cost.currency,
            price_status=cost.status,
            price_source=cost.source,
            cache_write_1h_cost=cost.cache_write_1h,
            billed_input_cost=billed.input,
            billed_output_cost=billed.output,
            billed_cache_read_cost=billed.cache_read,
            billed_cache_write_cost=billed.cache_write,
            billed_cache_write_1h_cost=None if bill.cache_write_1h is None else money(bill.cache_write_1h),
            billed_cost=billed.total,
            price_book=bill.book,
            price_book_entry=bill.entry,
            version=max(call.version + 1, version_floor),
        )
        if _cost_of(new) != _cost_of(call):
            changed.append(new)
            old_total += call.total_cost or 0
            new_total += new.total_cost or 0
            old_billed += call.billed_cost or 0
            new_billed += new.billed_cost or 0
            lost += call.total_cost is not None and new.total_cost is None
        if on_progress is not None:
            on_progress(done, len(rows))
    return changed, RepriceResult(len(rows), len(changed), old_total, new_total, lost, old_billed, new_billed)


def reprice(
    store: Store,
    catalog: PriceCatalog,
    *,
    books: PriceBooks | None = None,
    since: datetime,
    until: datetime,
    model: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    dry_run: bool = False,
) -> RepriceResult:
    """Re-price the calls in [since, until) (of `model` only, when given) with `catalog`, and bill
    them again with `books` (none: at their list prices).

    Versions are at least the current time in microseconds, so a re-priced row also wins over rows
    written earlier with time-based versions. `on_progress(done, total)` is called as calls are priced.
    With `dry_run` nothing is written: the result says what would change.
    """
    params = {"since": since, "until": until, "model": model}
    columns, _, rows = store.query(render_query("reprice_calls.sql", store.database), params)
    changed, result = price_again(
        columns, rows, catalog, books=books, version_floor=time.time_ns() // 1000, on_progress=on_progress
    )
    if dry_run:
        return result
    for start in range(0, len(changed), _BATCH):
        store.write(changed[start : start + _BATCH], [])
    store.refresh_aggregates()
    return result
