"""Corrections that auditors accept: what was exported is recorded, and later changes are corrections.

Every recorded `tokenbook export focus` run keeps its days [since, until), its tenant scope and the
rows it wrote (``focus_export_runs``, ``focus_export_rows``, migration 071). A later export of days
from ``since`` on also looks at every earlier day: for each tenant and day, the *baseline* is the
latest earlier run whose days and scope include it (its usage rows) plus the corrections recorded by
runs after that one. Where the ledger's figures now differ (a reprice, a changed price book), the
difference is written as a correction row (``ChargeClass = Correction``) with the corrected day as its
charge period and the new export's billing period. So the earlier file plus the later corrections add
up exactly to the new figures, row identity by row identity, and no exported figure is rewritten.

Running the same export (same days, same tenant scope, same currency) again replaces its record: it
is idempotent. An export in another currency (``--currency``) is compared only with earlier exports in
that currency, at the exchange rates in force for each day now.
"""

from __future__ import annotations

import time as clock
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from tokenbook.collector.storage.focus import Conversion, FocusLine, Query, usage_lines
from tokenbook.collector.storage.sqltemplate import render_query

__all__ = ["ExportRun", "Inserter", "corrections", "record_export", "run_key"]

_ROW_COLUMNS = (
    "run_key",
    "run_version",
    "day",
    "tenant_id",
    "project_id",
    "provider",
    "model",
    "currency",
    "price_source",
    "token_type",
    "list_unit_price",
    "catalog_version",
    "book",
    "contracted_unit_price",
    "correction",
    "list_cost",
    "billed_cost",
    "quantity",
    "calls",
    "service_tier",
    "pricing_currency",
    "pricing_list_unit_price",
    "pricing_contracted_unit_price",
    "pricing_billed_cost",
    "exchange_rate",
)


class Inserter(Protocol):
    """Writes rows into a table of the store (`Store.insert_rows`)."""

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` (values in `columns` order) into `table`."""
        ...


@dataclass(frozen=True, slots=True)
class ExportRun:
    """A recorded export: its days [since, until), tenant scope ('' = all), when it ran, and its billing
    currency ('' = the ledger's)."""

    key: str
    since: date
    until: date
    tenant: str
    exported_at: datetime
    version: int
    currency: str = ""

    def covers(self, day: date, tenant: str) -> bool:
        """Whether this run exported `tenant`'s usage of `day`."""
        return self.since <= day < self.until and self.tenant in ("", tenant)


def run_key(since: date, until: date, tenant: str, currency: str = "") -> str:
    """The identity of an export: running it again replaces its record."""
    return f"{since.isoformat()}|{until.isoformat()}|{tenant}" + (f"|{currency}" if currency else "")


def _normal_key(line: FocusLine) -> tuple[Any, ...]:
    return tuple(v.normalize() if isinstance(v, Decimal) else v for v in line.key)


def corrections(
    query: Query,
    database: str,
    *,
    since: date,
    until: date,
    tenant: str = "",
    conversion: Conversion | None = None,
) -> list[FocusLine]:
    """Correction rows for days before `since` that earlier recorded exports (in the same currency,
    that of `conversion` or the ledger's) got differently."""
    currency = conversion.currency if conversion is not None else ""
    key = run_key(since, until, tenant, currency)
    columns, _, raw_runs = query(
        render_query("focus_export_runs.sql", database), {"run_key": key, "currency": currency}
    )
    runs = [ExportRun(*r) for r in raw_runs]
    runs = [r for r in runs if r.since < since]
    if not runs:
        return []
    columns, _, raw = query(
        render_query("focus_export_rows.sql", database), {"before": since, "run_key": key, "tenant": tenant}
    )
    by_run: dict[str, list[FocusLine]] = {}
    for values in raw:
        r = dict(zip(columns, values, strict=True))
        by_run.setdefault(r["run_key"], []).append(FocusLine.of(r))
    first = min(r.since for r in runs)
    current = usage_lines(query, database, since=first, until=since, tenant=tenant, conversion=conversion)
    days = {(line.day, line.tenant) for line in current}
    days |= {(line.day, line.tenant) for lines in by_run.values() for line in lines}
    out: list[FocusLine] = []
    for day, who in sorted(days):
        covering = [r for r in runs if r.covers(day, who)]
        if not covering:
            continue  # never exported: nothing to correct
        base_run = max(covering, key=lambda r: r.exported_at)
        exported: dict[tuple[Any, ...], FocusLine] = {}
        for run in runs:
            for line in by_run.get(run.key, ()):
                if line.day != day or line.tenant != who:
                    continue
                if (run is base_run and not line.correction) or (
                    line.correction and run.exported_at > base_run.exported_at
                ):
                    _add(exported, line, 1)
        now: dict[tuple[Any, ...], FocusLine] = {}
        for line in current:
            if line.day == day and line.tenant == who:
                _add(now, line, 1)
        for k in sorted(set(exported) | set(now), key=repr):
            delta = _difference(now.get(k), exported.get(k))
            if delta is not None:
                out.append(delta)
    return out


def _add(into: dict[tuple[Any, ...], FocusLine], line: FocusLine, sign: int) -> None:
    k = _normal_key(line)
    held = into.get(k)
    into[k] = replace(
        line,
        correction=False,
        list_cost=(held.list_cost if held else Decimal(0)) + sign * line.list_cost,
        billed_cost=(held.billed_cost if held else Decimal(0)) + sign * line.billed_cost,
        quantity=(held.quantity if held else 0) + sign * line.quantity,
        calls=(held.calls if held else 0) + sign * line.calls,
        pricing_billed_cost=_sum(held.pricing_billed_cost if held else None, line.pricing_billed_cost, sign),
    )


def _sum(a: Decimal | None, b: Decimal | None, sign: int) -> Decimal | None:
    """``a + sign x b``, None when both are None (no conversion)."""
    if a is None and b is None:
        return None
    return (a or Decimal(0)) + sign * (b or Decimal(0))


def _difference(now: FocusLine | None, exported: FocusLine | None) -> FocusLine | None:
    base = now or exported
    assert base is not None
    list_cost = (now.list_cost if now else Decimal(0)) - (exported.list_cost if exported else Decimal(0))
    billed_cost = (now.billed_cost if now else Decimal(0)) - (
        exported.billed_cost if exported else Decimal(0)
    )
    quantity = (now.quantity if now else 0) - (exported.quantity if exported else 0)
    calls = (now.calls if now else 0) - (exported.calls if exported else 0)
    pricing = _sum(
        now.pricing_billed_cost if now else None, exported.pricing_billed_cost if exported else None, -1
    )
    if not (list_cost or billed_cost or quantity or calls or pricing):
        return None
    return replace(
        base,
        correction=True,
        list_cost=list_cost,
        billed_cost=billed_cost,
        quantity=quantity,
        calls=calls,
        pricing_billed_cost=pricing,
    )


def record_export(
    store: Inserter,
    *,
    since: date,
    until: date,
    tenant: str,
    lines: Sequence[FocusLine],
    currency: str = "",
) -> None:
    """Record an export run and the rows it wrote (replacing an earlier run of the same export);
    `currency`: its billing currency ('' = the ledger's)."""
    key = run_key(since, until, tenant, currency)
    version = clock.time_ns() // 1000
    rows = [
        (
            key,
            version,
            ln.day,
            ln.tenant,
            ln.project,
            ln.provider,
            ln.model,
            ln.currency,
            ln.price_source,
            ln.token_type,
            ln.list_unit_price,
            ln.catalog_version,
            ln.book,
            ln.contracted_unit_price,
            int(ln.correction),
            ln.list_cost,
            ln.billed_cost,
            ln.quantity,
            ln.calls,
            ln.service_tier,
            ln.pricing_currency,
            ln.pricing_list_unit_price,
            ln.pricing_contracted_unit_price,
            ln.pricing_billed_cost,
            ln.exchange_rate,
        )
        for ln in lines
    ]
    if rows:
        store.insert_rows("focus_export_rows", _ROW_COLUMNS, rows)
    store.insert_rows(
        "focus_export_runs",
        ("run_key", "since", "until", "tenant_id", "exported_at", "version", "currency"),
        [(key, since, until, tenant, datetime.now(UTC), version, currency)],
    )
