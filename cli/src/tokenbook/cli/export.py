"""`tokenbook export focus --since DAY --until DAY [--tenant T] [--format csv|jsonl|parquet] [--output FILE]
[--currency CODE --exchange-rates FILE]`.

Writes FOCUS 1.2 rows (`tokenbook.collector.storage.focus`) for the whole UTC days [since, until):
one per day x tenant x project x model x service tier x token type, with the tenants' billed costs.
Money is exact: decimal strings in CSV and JSON lines, ``decimal128(38, 12)`` in Parquet (needs
pyarrow). With ``--currency`` the rows are converted at each day's rate (``BillingCurrency`` is that
currency, ``PricingCurrency`` the ledger's). Calls without a price are left out and counted on stderr:
their cost is unknown, never 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from tokenbook.cli.currency import target_currency
from tokenbook.cli.reports import engine_message, open_reader, parse_time
from tokenbook.collector.storage.export_log import Inserter, corrections, record_export
from tokenbook.collector.storage.focus import (
    DECIMAL_COLUMNS,
    FOCUS_COLUMNS,
    Conversion,
    Query,
    focus_record,
    month_of,
    unpriced_calls,
    usage_lines,
)
from tokenbook.collector.storage.store import Store, StoreError

__all__ = ["cmd_export", "focus_export", "parse_day", "write_rows"]

_MAX_ROWS = 10_000_000
_SCALE = 12  # decimal places of money in Parquet


def parse_day(value: str, now: datetime) -> date:
    """A day boundary: an ISO date, a timestamp at midnight UTC, or a duration ago (at a midnight)."""
    moment = parse_time(value, now).astimezone(UTC)
    if moment.time() != datetime.min.time():
        raise ValueError(f"{value!r} is not a whole UTC day: FOCUS rows are daily, pass a date (2026-01-31)")
    return moment.date()


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def write_rows(rows: Sequence[Mapping[str, Any]], fmt: str, out: IO[str] | Path) -> None:
    """Write FOCUS rows as csv or jsonl to a text stream, or as parquet to a file path."""
    if fmt == "parquet":
        if not isinstance(out, Path):
            raise ValueError("--format parquet needs --output FILE")
        _write_parquet(rows, out)
        return
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8", newline="") as stream:
            write_rows(rows, fmt, stream)
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FOCUS_COLUMNS)
        for row in rows:
            writer.writerow(["" if row[c] is None else _cell(row[c]) for c in FOCUS_COLUMNS])
    else:
        for row in rows:
            out.write(json.dumps({c: _cell(row[c]) for c in FOCUS_COLUMNS}) + "\n")


def _write_parquet(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValueError("--format parquet needs pyarrow: pip install pyarrow") from exc
    fields = []
    for name in FOCUS_COLUMNS:
        if name in DECIMAL_COLUMNS:
            kind = pa.decimal128(38, _SCALE)
        elif name.endswith(("PeriodStart", "PeriodEnd")):
            kind = pa.timestamp("us", tz="UTC")
        elif name == "x_Calls":
            kind = pa.int64()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    quantum = Decimal(1).scaleb(-_SCALE)
    columns = {
        name: [
            row[name].quantize(quantum) if name in DECIMAL_COLUMNS and row[name] is not None else row[name]
            for row in rows
        ]
        for name in FOCUS_COLUMNS
    }
    pq.write_table(pa.table(columns, schema=pa.schema(fields)), path)


def focus_export(
    query: Query,
    *,
    since: date,
    until: date,
    tenant: str = "",
    billing_account: str = "tokenbook",
    database: str = "tokenbook",
    record: Inserter | None = None,
    conversion: Conversion | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The FOCUS rows of days [since, until) (usage, then corrections of earlier recorded exports) and
    how many billed calls were left out unpriced. With `record` the export is recorded there, so a
    later export corrects it (`tokenbook.collector.storage.export_log`); with `conversion` the rows are
    in its currency. Raises `MissingRate` (a ValueError) for a day without an exchange rate."""
    lines = usage_lines(query, database, since=since, until=until, tenant=tenant, conversion=conversion)
    fixes = corrections(query, database, since=since, until=until, tenant=tenant, conversion=conversion)
    unpriced = unpriced_calls(query, database, since=since, until=until, tenant=tenant)
    if record is not None:
        currency = conversion.currency if conversion is not None else ""
        record_export(
            record, since=since, until=until, tenant=tenant, lines=[*lines, *fixes], currency=currency
        )
    period = month_of(since)
    rows = [focus_record(line, billing_account=billing_account) for line in lines]
    rows += [focus_record(line, billing_period=period, billing_account=billing_account) for line in fixes]
    return rows, unpriced


def _totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["BillingCurrency"]] = totals.get(row["BillingCurrency"], Decimal(0)) + row["BilledCost"]
    return totals


def cmd_export(args: argparse.Namespace) -> int:
    """Handler of `tokenbook export focus`; returns the exit code."""
    try:
        now = datetime.now(UTC)
        since, until = parse_day(args.since, now), parse_day(args.until, now)
        if since >= until:
            raise ValueError(f"--since ({since}) must be before --until ({until})")
        if args.format == "parquet" and not args.output:
            raise ValueError("--format parquet needs --output FILE")
        target = target_currency(args)
        with open_reader(args) as reader:

            def query(sql: str, params: Mapping[str, Any]) -> Any:
                return reader.query_readonly(sql, params, max_rows=_MAX_ROWS)

            record = reader if isinstance(reader, Store) and not args.no_record else None
            rows, unpriced = focus_export(
                query,
                since=since,
                until=until,
                tenant=args.tenant or "",
                billing_account=args.billing_account,
                record=record,
                conversion=None if target is None else Conversion(*target),
            )
        write_rows(rows, args.format, Path(args.output) if args.output else sys.stdout)
    except ValueError as exc:
        print(f"tokenbook export: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"tokenbook export: {engine_message(exc, show_query=False)}", file=sys.stderr)
        return 1
    total = ", ".join(f"{v:f} {c}" for c, v in sorted(_totals(rows).items()))
    where = f" to {args.output}" if args.output else ""
    billed = f"billed {total}" if total else "nothing billed"
    print(f"tokenbook export: {len(rows):,} FOCUS rows{where}, {billed}", file=sys.stderr)
    if record is None and not args.no_record:
        print(
            "tokenbook export: not recorded (a running collector owns the store): a later export cannot "
            "correct this one; stop the collector, or export from the server with --url",
            file=sys.stderr,
        )
    if unpriced:
        print(
            f"tokenbook export: {unpriced:,} billed calls have no price and are not in the export (their "
            "cost is unknown, not 0): `tokenbook prices --unpriced` lists their models; price them with "
            "an overrides file and `tokenbook reprice`",
            file=sys.stderr,
        )
    return 0
