"""`tokenbook prices [MODEL] [--provider P] [--at TS] [--overrides FILE] [--format F] [--unpriced]`.

* With MODEL: the unit prices used for that model at ``--at`` (default now), and where they come from
  (catalog version and price period, or override file and entry with its ``source`` and ``checked``).
  Exit 1 when the model has no price, printing why.
* Without MODEL: the models of ``--provider`` with their current prices, or, without a provider, the
  catalog's providers and the override entries.
* ``--version``: the catalog in use, ``genai-prices X.Y.Z`` (the installed package).
* ``--unpriced``: models seen in the ledger without a price (`tokenbook.reports.cmd_unpriced`).

Prices are per million tokens, in the price's currency (USD for the catalog).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from genai_prices.data_snapshot import get_snapshot

from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.overrides import PriceConfigError
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
    if fmt == "json":
        for row in rows:
            print(json.dumps(row))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    elif len(rows) == 1:
        width = max(len(c) for c in columns)
        for col in columns:
            if rows[0].get(col):
                print(f"{col:<{width}}  {rows[0][col]}")
    else:
        shown = [c for c in columns if any(r.get(c) for r in rows)]
        widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in shown}
        print("  ".join(f"{c:<{widths[c]}}" for c in shown).rstrip())
        for row in rows:
            print("  ".join(f"{row.get(c, ''):<{widths[c]}}" for c in shown).rstrip())


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
        at = _parse_at(args.at)
    except PriceConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"--at: not an ISO timestamp: {exc}", file=sys.stderr)
        return 2
    provider = args.provider or ""
    if args.model:
        found = catalog.unit_prices(provider, args.model, at)
        if isinstance(found, str):
            print(f"unpriced: {found}", file=sys.stderr)
            return 1
        row = _row(found, _override_note(catalog, found))
        row["at"] = at.isoformat()
        _print([row], args.format, (*_COLUMNS, "at"))
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
