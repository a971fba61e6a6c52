"""Corrections that auditors accept: what was exported is recorded, and later changes are corrections.

Every recorded `tokenbook export focus` run keeps its days [since, until), its tenant scope and the
rows it wrote (``focus_export_runs``, ``focus_export_rows``, migration 071). A later export of days
from ``since`` on also looks at every earlier day: for each tenant and day, the *baseline* is the
latest earlier run whose days and scope include it (its usage rows) plus the corrections recorded by
runs after that one. Where the ledger's figures now differ (a reprice, a changed price book), the
difference is written as a correction row (``ChargeClass = Correction``) with the corrected day as its
charge period and the new export's billing period. So the earlier file plus the later corrections add
up exactly to the new figures, row identity by row identity, and no exported figure is rewritten.

Running the same export (same days, same tenant scope) again replaces its record: it is idempotent.
"""

from __future__ import annotations

import time as clock
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from tokenbook.collector.storage.focus import LIST_PRICE, Biller, FocusLine, Query, usage_lines
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
)


class Inserter(Protocol):
    """Writes rows into a table of the store (`Store.insert_rows`)."""

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` (values in `columns` order) into `table`."""
        ...


@dataclass(frozen=True, slots=True)
class ExportRun:
    """A recorded export: its days [since, until), tenant scope ('' = all) and when it ran."""

    key: str
    since: date
    until: date
    tenant: str
    exported_at: datetime
    version: int

    def covers(self, day: date, tenant: str) -> bool:
        """Whether this run exported `tenant`'s usage of `day`."""
        return self.since <= day < self.until and self.tenant in ("", tenant)


def run_key(since: date, until: date, tenant: str) -> str:
    """The identity of an export: running it again replaces its record."""
    return f"{since.isoformat()}|{until.isoformat()}|{tenant}"


def _line(r: Mapping[str, Any]) -> FocusLine:
    return FocusLine(
        day=r["day"],
        tenant=r["tenant_id"],
        project=r["project_id"],
        provider=r["provider"],
        model=r["model"],
        currency=r["currency"],
        price_source=r["price_source"],
        token_type=r["token_type"],
        list_unit_price=None if r["list_unit_price"] is None else r["list_unit_price"].normalize(),
        catalog_version=r["catalog_version"],
        book=r["book"],
        contracted_unit_price=(
            None if r["contracted_unit_price"] is None else r["contracted_unit_price"].normalize()
        ),
        list_cost=r["list_cost"],
        billed_cost=r["billed_cost"],
        quantity=int(r["quantity"]),
        calls=int(r["calls"]),
        correction=bool(r["correction"]),
    )


def _normal_key(line: FocusLine) -> tuple[Any, ...]:
    return tuple(v.normalize() if isinstance(v, Decimal) else v for v in line.key)


def corrections(
    query: Query,
    database: str,
    *,
    since: date,
    until: date,
    tenant: str = "",
    biller: Biller = LIST_PRICE,
) -> list[FocusLine]:
    """Correction rows for days before `since` that earlier recorded exports got differently."""
    key = run_key(since, until, tenant)
    columns, _, raw_runs = query(render_query("focus_export_runs.sql", database), {"run_key": key})
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
        by_run.setdefault(r["run_key"], []).append(_line(r))
    first = min(r.since for r in runs)
    current = usage_lines(query, database, since=first, until=since, tenant=tenant, biller=biller)
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
    )


def _difference(now: FocusLine | None, exported: FocusLine | None) -> FocusLine | None:
    base = now or exported
    assert base is not None
    list_cost = (now.list_cost if now else Decimal(0)) - (exported.list_cost if exported else Decimal(0))
    billed_cost = (now.billed_cost if now else Decimal(0)) - (
        exported.billed_cost if exported else Decimal(0)
    )
    quantity = (now.quantity if now else 0) - (exported.quantity if exported else 0)
    calls = (now.calls if now else 0) - (exported.calls if exported else 0)
    if not (list_cost or billed_cost or quantity or calls):
        return None
    return replace(
        base, correction=True, list_cost=list_cost, billed_cost=billed_cost, quantity=quantity, calls=calls
    )


def record_export(
    store: Inserter, *, since: date, until: date, tenant: str, lines: Sequence[FocusLine]
) -> None:
    """Record an export run and the rows it wrote (replacing an earlier run of the same export)."""
    key = run_key(since, until, tenant)
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
        )
        for ln in lines
    ]
    if rows:
        store.insert_rows("focus_export_rows", _ROW_COLUMNS, rows)
    store.insert_rows(
        "focus_export_runs",
        ("run_key", "since", "until", "tenant_id", "exported_at", "version"),
        [(key, since, until, tenant, datetime.now(UTC), version)],
    )
