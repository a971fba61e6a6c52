"""`tokenbook prices [MODEL] [--provider P] [--at TS] [--overrides FILE] [--service-tier TIER]
[--tenant T --books FILE] [--format F] [--unpriced]`.

* With MODEL: the unit prices used for that model at ``--at`` (default now) and ``--service-tier``
  (default standard), and where they come from (catalog version and price period, or override file
  and entry with its ``source`` and ``checked``). Exit 1 when the model has no price, printing why.
  With ``--tenant``, a second row: what the tenant's price book bills for it (the entry's rates, or
  the list rates times its markup), and which book and entry.
* With ``--tenant`` and no MODEL: the tenant's price book, entry by entry.
* Without MODEL: the models of ``--provider`` with their current prices, or, without a provider, the
  catalog's providers and the override entries.
* ``--version``: the catalog in use, ``genai-prices X.Y.Z`` (the installed package).
* ``--unpriced``: models (and service tiers) seen in the ledger without a price
  (`tokenbook.reports.cmd_unpriced`).

Prices are per million tokens, in the price's currency (USD for the catalog). A markup's rates are
shown unrounded: a call's billed cost rounds each of its components once, to 1e-12.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from genai_prices.data_snapshot import get_snapshot

from tokenbook.cli.output import print_fields, print_result
from tokenbook.genai.pricing.books import LoadedBook, LoadedEntry, PriceBooks
from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.fields import PriceConfigError, tier_name
from tokenbook.genai.pricing.providers import catalog_provider
from tokenbook.genai.pricing.rates import PRICE_KEYS, UnitPrices

__all__ = ["cmd_prices"]

_COLUMNS = ("provider", "model", *PRICE_KEYS, "tiers", "currency", "source", "note")


def _parse_at(raw: str | None) -> datetime:
    if not raw:
        return datetime.now(tz=UTC)
    at = datetime.fromisoformat(raw.strip())  # accepts a trailing Z (Python 3.11)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _fmt(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def _row(prices: UnitPrices, note: str = "") -> dict[str, str]:
    row = {"provider": prices.provider, "model": prices.model}
    row.update({col: _fmt(getattr(prices, col)) for col in PRICE_KEYS})
    row["tiers"] = "; ".join(
        f"{key} above {start:,} input tokens: {_fmt(price)}"
        for key, tiers in prices.tiers.items()
        for start, price in tiers
    )
    row.update(currency=prices.currency, source=prices.source, note=note)
    return row


def _print(rows: Sequence[dict[str, str]], fmt: str, columns: Sequence[str]) -> None:
    """Rows as JSON lines, CSV, or for a terminal: one block of ``column  value`` lines per row for one
    or two rows (a model's list and billed prices), else a table that fits the terminal."""
    if fmt == "json":
        for row in rows:
            print(json.dumps(row))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    elif len(rows) <= 2:
        pad = max(len(c) for c in columns)  # both blocks aligned alike
        for n, row in enumerate(rows):
            if n:
                print()
            print_fields([(col, row[col]) for col in columns if row.get(col)], pad=pad)
    else:
        shown = [c for c in columns if any(r.get(c) for r in rows)]
        print_result(shown, ["String"] * len(shown), [[r.get(c, "") for c in shown] for r in rows], "table")


def _override_note(catalog: PriceCatalog, prices: UnitPrices) -> str:
    for entry in catalog.overrides:
        if entry.prices is prices:
            window = ""
            if entry.valid_from or entry.valid_until:
                start = entry.valid_from.isoformat() if entry.valid_from else ""
                end = entry.valid_until.isoformat() if entry.valid_until else ""
                window = f"; in force {start}..{end}"
            return f"{entry.source} (checked {entry.checked.isoformat()}{window})"
    return ""


def cmd_prices(args: argparse.Namespace) -> int:
    """Handler of `tokenbook prices`; returns the exit code."""
    if args.version:
        print(CATALOG_NAME)
        return 0
    if args.unpriced:
        handler = importlib.import_module("tokenbook.cli.reports").cmd_unpriced
        code: int = handler(args)
        return code
    try:
        catalog = PriceCatalog(args.overrides)
        books = PriceBooks(args.books)
        tier = tier_name(args.service_tier) if args.service_tier else ""
    except PriceConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"--service-tier: {exc}", file=sys.stderr)
        return 2
    try:
        at = _parse_at(args.at)
    except ValueError as exc:
        print(f"--at: not an ISO timestamp: {exc}", file=sys.stderr)
        return 2
    book = books.book_of(args.tenant) if args.tenant is not None else None
    if args.tenant is not None and book is None:
        where = f"in {args.books}" if args.books else "(pass the collector's --books FILE)"
        print(
            f"tenant {args.tenant!r} has no price book {where}: it is billed the list price", file=sys.stderr
        )
        if not args.model:
            return 1
    provider = args.provider or ""
    if args.model:
        found = catalog.unit_prices(provider, args.model, at, tier)
        if isinstance(found, str):
            print(f"unpriced: {found}", file=sys.stderr)
            return 1
        row = _row(found, _override_note(catalog, found))
        row["price"] = "list"
        rows = [row]
        if book is not None:
            rows.append(_billed_row(book, found, provider, args.model, tier, at))
        for r in rows:
            r["at"] = at.isoformat()
            r["service_tier"] = tier or "standard"
        _print(rows, args.format, ("price", *_COLUMNS, "service_tier", "at"))
        return 0
    if book is not None:
        _print([_entry_row(book, e) for e in book.entries], args.format, _BOOK_COLUMNS)
        return 0
    if provider:
        return _list_provider(catalog, provider, at, args.format)
    rows = [
        {"provider": p.id, "models": str(len(p.models)), "source": CATALOG_NAME}
        for p in get_snapshot().providers
    ]
    rows += [
        {"provider": e.provider or "*", "models": ", ".join(sorted(e.models)), "source": e.prices.source}
        for e in catalog.overrides
    ]
    _print(rows, args.format, ("provider", "models", "source"))
    return 0


def _billed_row(
    book: LoadedBook, listed: UnitPrices, provider: str, model: str, tier: str, at: datetime
) -> dict[str, str]:
    """What `book` bills for `model` at `at`: the first entry that matches (its rates, or the list rates
    times its markup), or the list rates when none does."""
    for entry in book.entries:
        if not entry.matches(provider, model, tier, at):
            continue
        if entry.prices is not None:
            if entry.prices.currency != listed.currency:
                continue
            row = _row(entry.prices, f"{book.source} (checked {book.checked.isoformat()})")
        else:
            assert entry.factor is not None
            factor = Decimal(entry.factor.numerator) / Decimal(entry.factor.denominator)

            def scaled(rate: Decimal | None, by: Decimal = factor) -> Decimal | None:
                return None if rate is None else rate * by

            marked = replace(
                listed,
                input_mtok=scaled(listed.input_mtok),
                output_mtok=scaled(listed.output_mtok),
                cache_read_mtok=scaled(listed.cache_read_mtok),
                cache_write_mtok=scaled(listed.cache_write_mtok),
                output_reasoning_mtok=scaled(listed.output_reasoning_mtok),
                cache_write_1h_mtok=scaled(listed.cache_write_1h_mtok),
                tiers={k: tuple((start, p * factor) for start, p in t) for k, t in listed.tiers.items()},
            )
            row = _row(marked, f"list price x {_fmt(factor)} ({book.source})")
        row.update(price="billed", source=f"{book.cite}/{entry.id}")
        return row
    row = _row(listed, "no entry of the book matches: the list price")
    row.update(price="billed", source=book.cite)
    return row


#: `prices --tenant T` without a model: the tenant's book, one row per entry.
_BOOK_COLUMNS = ("book", "entry", "models", "provider", "service_tier", "from", "until", "terms", "source")


def _entry_row(book: LoadedBook, entry: LoadedEntry) -> dict[str, str]:
    if entry.factor is not None:
        percent = (Decimal(entry.factor.numerator) / Decimal(entry.factor.denominator) - 1) * 100
        terms = f"markup {_fmt(percent)} %" if percent >= 0 else f"discount {_fmt(-percent)} %"
    else:
        assert entry.prices is not None
        rates = ", ".join(
            f"{key.removesuffix('_mtok')} {_fmt(getattr(entry.prices, key))}"
            for key in PRICE_KEYS
            if getattr(entry.prices, key) is not None
        )
        terms = f"{rates} {entry.prices.currency} per 1M tokens"
    return {
        "book": book.cite,
        "entry": entry.id,
        "models": ", ".join(sorted(entry.models)) if entry.models is not None else "(every model)",
        "provider": entry.provider or "",
        "service_tier": entry.service_tier or "",
        "from": entry.valid_from.isoformat() if entry.valid_from else "",
        "until": entry.valid_until.isoformat() if entry.valid_until else "",
        "terms": terms,
        "source": f"{book.source} (checked {book.checked.isoformat()})",
    }


def _list_provider(catalog: PriceCatalog, provider: str, at: datetime, fmt: str) -> int:
    provider_id = catalog_provider(provider)
    gp = next((p for p in get_snapshot().providers if p.id == provider_id), None)
    if gp is None:
        print(f"unknown provider {provider!r} (no catalog mapping)", file=sys.stderr)
        return 1
    rows = []
    for model in gp.models:
        found = catalog.unit_prices(provider, model.id, at)
        if not isinstance(found, str):
            rows.append(_row(found))
    _print(rows, fmt, _COLUMNS[:-1])
    return 0
