"""`tokenbook reconcile [FILE...] [--since DAY] [--until DAY] [--provider P] [--tenant T] [--threshold F]`.

Imports the provider exports given (OpenAI Usage/Costs API JSON and dashboard CSVs, Anthropic
usage_report/cost_report JSON and console CSVs: `storage.provider_exports`) into the store's
``provider_usage`` (through the admin API of the collector that owns the store, which then checks
its drift alerts), then prints the drift of the window per day x provider x model x token type from
``v_reconcile_drift``: the provider's tokens and cost against the ledger's, exactly (Decimal), with
the visible cause of each drift. Without FILE it prints what earlier imports hold.

The window defaults to the days the files cover (else the last 7 days). A row that cannot be read is
named on stderr and left out (exit 1 at the end); a file that is no export is refused (exit 2)
before anything is imported, as are two files giving the same provider's usage (or costs) for one
day.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from tokenbook.cli.export import parse_day
from tokenbook.cli.output import format_money, format_tokens, print_result, terminal_width
from tokenbook.cli.reports import open_reader, report_failure
from tokenbook.collector.query.api import AdminQueryClient
from tokenbook.collector.storage.drift import CAUSES, DriftRow, beyond, drift_rows
from tokenbook.collector.storage.provider_exports import Export, ExportError, read_export
from tokenbook.collector.storage.provider_usage import ProviderRow, import_rows
from tokenbook.collector.storage.store import Store, StoreError

__all__ = ["COLUMNS", "cmd_reconcile", "flat_rows", "load_exports"]

_MAX_ROWS = 1_000_000
#: The columns of --format csv and json (and the order of `flat_rows`).
COLUMNS = (
    "day", "provider", "model", "token_type", "provider_tokens", "ledger_tokens", "token_drift",
    "provider_cost", "ledger_cost", "cost_drift", "provider_requests", "ledger_calls",
    "ledger_unpriced_calls", "cause", "beyond_threshold",
)  # fmt: skip
_TYPES = (
    "Date", "String", "String", "String", "Nullable(Int64)", "Int64", "Nullable(Int64)",
    "Nullable(Decimal(38, 12))", "Nullable(Decimal(38, 12))", "Nullable(Decimal(38, 12))",
    "Nullable(Int64)", "UInt64", "UInt64", "String", "Bool",
)  # fmt: skip
#: The table's columns per day x provider (costs are in its heading): tokens go first on a narrow terminal.
_TABLE = ("model", "token_type", "token_drift", "cost_drift", "cause", "provider_tokens", "ledger_tokens")
_TABLE_TYPES = (
    "String",
    "String",
    "Nullable(Int64)",
    "Nullable(Decimal(38, 12))",
    "String",
    "Nullable(Int64)",
    "Int64",
)


def load_exports(paths: Sequence[str], provider: str) -> tuple[list[Export], list[ProviderRow]]:
    """Read the files; keep the rows of `provider` ('' = both). Raises ExportError for a file that is no
    export, or for two files giving the same provider's usage (or costs) for the same day."""
    exports = [read_export(p) for p in paths]
    seen: dict[tuple[str, str, date], str] = {}
    for export in exports:
        for day in sorted({r.day for r in export.rows}):
            key = (export.provider, export.kind, day)
            other = seen.setdefault(key, export.file)
            if other != export.file:
                raise ExportError(
                    f"{other} and {export.file} both give {export.provider} {export.kind} for {day}: pass "
                    "one of them (the API's JSON and the dashboard's CSV are the same figures)"
                )
    rows = [r for e in exports for r in e.rows if not provider or r.provider == provider]
    return exports, rows


def _window(args: argparse.Namespace, rows: Sequence[ProviderRow]) -> tuple[date, date]:
    now = datetime.now(UTC)
    days = sorted({r.day for r in rows})
    since = (
        parse_day(args.since, now) if args.since else (days[0] if days else now.date() - timedelta(days=6))
    )
    until = (
        parse_day(args.until, now) if args.until else (days[-1] if days else now.date()) + timedelta(days=1)
    )
    if since >= until:
        raise ValueError(f"--since ({since}) must be before --until ({until})")
    return since, until


def _threshold(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal(-1)
    if not value.is_finite() or not 0 < value < 1:
        raise ValueError(f"--threshold must be a fraction in (0, 1), e.g. 0.05 for 5%, got {text!r}")
    return value


def flat_rows(rows: Sequence[DriftRow], threshold: Decimal) -> list[tuple[Any, ...]]:
    """The drift rows in `COLUMNS` order; ``beyond_threshold``: tokens or cost differ by more than
    `threshold` of the larger figure."""
    return [
        (
            r.day, r.provider, r.model, r.token_type, r.provider_tokens, r.ledger_tokens, r.token_drift,
            r.provider_cost, r.ledger_cost, r.cost_drift, r.provider_requests, r.ledger_calls,
            r.ledger_unpriced_calls, r.cause,
            beyond(r.provider_tokens, r.ledger_tokens, threshold, Decimal(0))
            or beyond(r.provider_cost, r.ledger_cost, threshold, Decimal(0)),
        )
        for r in rows
    ]  # fmt: skip


def _total(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present[1:], present[0]) if present else None


def _percent(drift: Decimal, base: Decimal) -> str:
    return "" if not base else f", {drift * 100 / base:+.1f}%"


def _heading(day: date, provider: str, rows: Sequence[DriftRow], exact: bool) -> str:
    """The day's provider and ledger totals (tokens, cost) and their drift (provider - ledger)."""
    lines = [f"{day}  {provider}"]
    if any(r.provider_tokens is not None for r in rows):
        p = sum(r.provider_tokens or 0 for r in rows)
        ledger = sum(r.ledger_tokens for r in rows)
        lines.append(
            f"  tokens: provider {format_tokens(p)}, ledger {format_tokens(ledger)}, "
            f"drift {p - ledger:+,}{_percent(Decimal(p - ledger), Decimal(p))}"
        )
    if any(r.provider_cost is not None for r in rows):
        p_cost = _total([r.provider_cost for r in rows]) or Decimal(0)
        l_cost = _total([r.ledger_cost for r in rows]) or Decimal(0)
        drift = p_cost - l_cost
        shown = format_money(p_cost, exact=exact), format_money(l_cost, exact=exact)
        line = f"  cost (USD): provider {shown[0]}, ledger {shown[1]}"
        line += (
            f", drift {'+' if drift >= 0 else ''}{format_money(drift, exact=exact)}{_percent(drift, p_cost)}"
        )
        lines.append(line)
        unpriced = sum(r.ledger_unpriced_calls for r in rows if r.token_type == "input")
        if unpriced:
            lines.append(f"  {unpriced:,} ledger calls unpriced: their cost is unknown, not 0")
    return "\n".join(lines)


def _print_table(rows: Sequence[DriftRow], exact: bool, out: TextIO) -> None:
    width = terminal_width(out)
    sections: dict[tuple[date, str], list[DriftRow]] = {}
    for r in rows:
        sections.setdefault((r.day, r.provider), []).append(r)
    for n, ((day, provider), group) in enumerate(sections.items()):
        out.write(("\n" if n else "") + _heading(day, provider, group, exact) + "\n")
        table = [
            (r.model, r.token_type, r.token_drift, r.cost_drift, r.cause, r.provider_tokens, r.ledger_tokens)
            for r in group
        ]
        print_result(_TABLE, _TABLE_TYPES, table, "table", out=out, exact=exact, width=width)


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Handler of `tokenbook reconcile` (see the module docstring); returns the exit code."""
    err = sys.stderr
    try:
        threshold = _threshold(args.threshold)
        exports, rows = load_exports(args.files, args.provider or "")
        since, until = _window(args, rows)
        tenant = args.tenant or ""
        for export in exports:
            for problem in export.problems:
                print(f"tokenbook reconcile: {problem} (left out)", file=err)
        with open_reader(args) as reader:
            if rows:
                if isinstance(reader, AdminQueryClient):
                    reader.import_provider_rows(rows, tenant=tenant)
                else:
                    assert isinstance(reader, Store)
                    import_rows(reader, rows, tenant=tenant)
                files = ", ".join(f"{e.file} ({e.source}, {len(e.rows):,} rows)" for e in exports)
                print(f"tokenbook reconcile: imported {files} into {reader.description}", file=err)

            def query(sql: str, params: Any) -> Any:
                return reader.query_readonly(sql, params, max_rows=_MAX_ROWS)

            found = drift_rows(
                query, "tokenbook", since=since, until=until, provider=args.provider or "", tenant=tenant
            )
    except ValueError as exc:  # ExportError too
        print(f"tokenbook reconcile: {exc}", file=err)
        return 2
    except StoreError as exc:
        return report_failure("reconcile", exc, show_query=False)
    if args.format == "table":
        _print_table(found, args.exact, sys.stdout)
    else:
        print_result(COLUMNS, _TYPES, flat_rows(found, threshold), args.format)
    _summary(found, threshold, since, until, tenant, err)
    return 1 if any(e.problems for e in exports) else 0


def _summary(
    found: Sequence[DriftRow], threshold: Decimal, since: date, until: date, tenant: str, err: TextIO
) -> None:
    who = f" for tenant {tenant!r}" if tenant else ""
    last = until - timedelta(days=1)
    span = f"{since}" if since == last else f"{since} to {last}"
    if not found:
        print(
            f"tokenbook reconcile: no provider figures{who} for {span}: pass the provider's usage and cost "
            "exports (docs/guide/reconciliation.md)",
            file=err,
        )
        return
    drifting = sum(1 for row in flat_rows(found, threshold) if row[-1])
    percent = f"{(threshold * 100).normalize():f}%"
    print(f"tokenbook reconcile: {drifting:,} of {len(found):,} rows drift by more than {percent}", file=err)
    for cause in dict.fromkeys(r.cause for r in found if r.cause):
        print(f"  {cause}: {CAUSES.get(cause, cause)}", file=err)
