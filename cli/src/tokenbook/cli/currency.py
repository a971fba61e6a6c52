"""``--currency CODE --exchange-rates FILE``: reports and exports in another currency.

The rates file is `tokenbook.genai.pricing.exchange`'s format; each day's amounts are converted at that
day's rate, so a total never mixes currencies. A missing rate is an error naming the day and currency.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tokenbook.genai.pricing.exchange import ExchangeRates
from tokenbook.genai.pricing.fields import currency_code

__all__ = ["MONEY_COLUMNS", "convert_report", "target_currency"]

#: The report columns that hold money (converted; the others are counts or keys).
MONEY_COLUMNS = frozenset({"total_cost", "billed_cost"})


def target_currency(args: argparse.Namespace) -> tuple[str, ExchangeRates] | None:
    """The currency and rates `args` ask for, or None (the ledger's currency).

    Raises ValueError (`PriceConfigError` for a bad rates file) with what to fix.
    """
    if args.currency is None:
        if args.exchange_rates is not None:
            raise ValueError("--exchange-rates needs --currency CODE (the currency to convert to)")
        return None
    try:
        code = currency_code(args.currency)
    except ValueError as exc:
        raise ValueError(f"--currency {args.currency!r}: {exc}") from None
    if args.exchange_rates is None:
        raise ValueError(f"--currency {code} needs --exchange-rates FILE (dated rates, with their source)")
    return code, ExchangeRates.load(args.exchange_rates)


def convert_report(
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
    currency: str,
    rates: ExchangeRates,
) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """Report rows in `currency`: each row's money converted at the rate of its day (its ``day``, or
    its ``timestamp`` for one context's calls), rounded half-even once to 1e-12, then the rows of a
    key summed (the ``day`` column is dropped). Counts are summed as they are. Raises `MissingRate`
    (a ValueError) for a day without a rate.
    """
    when = "day" if "day" in columns else "timestamp"
    at, money = columns.index(when), [i for i, c in enumerate(columns) if c in MONEY_COLUMNS]
    where = columns.index("currency")
    converted: list[list[Any]] = []
    for row in rows:
        on = row[at].date() if isinstance(row[at], datetime) else row[at]
        assert isinstance(on, date)
        out = list(row)
        for i in money:
            if out[i] is not None:
                out[i] = rates.convert(Decimal(out[i]), row[where], currency, on)
        out[where] = currency
        converted.append(out)
    if when == "timestamp":  # one row per call: nothing to sum
        return list(columns), list(types), [tuple(r) for r in converted]
    keys = [i for i, c in enumerate(columns) if c in ("key", "currency")]
    summed: dict[tuple[Any, ...], list[Any]] = {}
    for out in converted:
        held = summed.get(tuple(out[i] for i in keys))
        if held is None:
            summed[tuple(out[i] for i in keys)] = out
            continue
        for i, value in enumerate(out):
            if i in keys or i == at:
                continue
            held[i] = value if held[i] is None else held[i] if value is None else held[i] + value
    kept = [i for i in range(len(columns)) if i != at]
    result = [tuple(r[i] for i in kept) for r in summed.values()]
    total = columns.index("total_cost")
    result.sort(key=lambda r: (r[kept.index(total)] is None, -(r[kept.index(total)] or 0), str(r[0])))
    return [columns[i] for i in kept], [types[i] for i in kept], result
