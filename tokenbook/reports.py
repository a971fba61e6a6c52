"""`tokenbook report`, `tokenbook sql`, `tokenbook prices --unpriced` and `tokenbook reprice`.

Where they read (DESIGN.md "CLI"): `--url` a ClickHouse server; `--admin HOST:PORT` a running
collector's admin API; otherwise the embedded store in `--data-dir` (default `./tokenbook-data`),
through the admin API of the collector that owns it when one is running (chDB allows one process
per directory), else by opening the directory. Every read is one checked SELECT; money is printed
exactly.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from tokenbook.collector.ledger import CallRow
from tokenbook.collector.owner import current_owner
from tokenbook.collector.query_api import AdminQueryClient
from tokenbook.collector.readonly import QueryRefused
from tokenbook.collector.sqltemplate import render_query
from tokenbook.collector.store import QueryResult, Store, StoreError
from tokenbook.output import print_result

__all__ = ["RepriceResult", "cmd_report", "cmd_reprice", "cmd_sql", "cmd_unpriced", "parse_time", "reprice"]

_DEFAULT_DATA_DIR = "tokenbook-data"
_MAX_ROWS = 100_000  # rows a CLI query may return
_CONTEXT_LIMIT = 100  # contexts listed by `report --by context`
_REPRICE_BATCH = 10_000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Reader(Protocol):
    description: str

    def query_readonly(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, max_rows: int = ...
    ) -> QueryResult: ...

    def close(self) -> None: ...


def parse_time(value: str, now: datetime) -> datetime:
    """`30m`, `24h`, `7d`, `2w` (that long before `now`) or an ISO 8601 timestamp (UTC if naive)."""
    m = _DURATION.fullmatch(value.strip())
    if m is not None:
        return now - timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is neither a duration (30m, 24h, 7d) nor an ISO timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _time_range(args: argparse.Namespace) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    since = parse_time(args.since, now)
    until = parse_time(args.until, now) if args.until else now
    if since >= until:
        raise ValueError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    return since, until


def _existing_dir(args: argparse.Namespace) -> Path:
    data_dir = Path(args.data_dir or _DEFAULT_DATA_DIR)
    if not data_dir.is_dir():
        raise StoreError(
            f"no embedded store in {data_dir}: run `tokenbook collector`, or pass --url or --admin"
        )
    return data_dir


@contextmanager
def _reader(args: argparse.Namespace) -> Iterator[_Reader]:
    """The read target of `args` (see module docstring)."""
    reader: _Reader
    if args.url:
        reader = Store.open(args.url)
    elif args.admin:
        reader = AdminQueryClient(args.admin)
    else:
        data_dir = _existing_dir(args)
        owner = current_owner(data_dir)
        reader = AdminQueryClient(owner) if owner else Store.open(data_dir=data_dir)
    try:
        yield reader
    finally:
        reader.close()


def _fail(command: str, exc: Exception) -> int:
    print(f"tokenbook {command}: {exc}", file=sys.stderr)
    return 1


def cmd_sql(args: argparse.Namespace) -> int:
    """`tokenbook sql "SELECT ..." [--format table|json|csv]`: one read-only SELECT."""
    try:
        with _reader(args) as reader:
            columns, types, rows = reader.query_readonly(args.query, max_rows=_MAX_ROWS)
    except (QueryRefused, StoreError) as exc:
        return _fail("sql", exc)
    print_result(columns, types, rows, args.format)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`tokenbook report --by DIM --since 24h [--until] [--tenant T]`, or `--context ID`."""
    tenant = args.tenant or ""
    try:
        if args.context:
            name, params = "report_context_calls.sql", {"context": args.context, "tenant": tenant}
        else:
            since, until = _time_range(args)
            params = {"since": since, "until": until, "tenant": tenant}
            if args.by == "context":
                name = "report_contexts.sql"
                params["limit"] = _CONTEXT_LIMIT
            else:
                name = "report_by.sql"
                params["by"] = args.by
        with _reader(args) as reader:
            columns, types, rows = reader.query_readonly(
                render_query(name, "tokenbook"), params, max_rows=_MAX_ROWS
            )
    except (ValueError, StoreError) as exc:
        return _fail("report", exc)
    if name == "report_by.sql":
        columns = [args.by if c == "key" else c for c in columns]
    if args.context and not rows:
        print(f"tokenbook report: no calls recorded for context {args.context!r}", file=sys.stderr)
        return 1
    print_result(columns, types, rows, args.format)
    return 0


def cmd_unpriced(args: argparse.Namespace) -> int:
    """`tokenbook prices --unpriced [MODEL] [--provider P]`: models seen without a price."""
    params = {"model": args.model or "", "provider": args.provider or ""}
    try:
        with _reader(args) as reader:
            columns, types, rows = reader.query_readonly(
                render_query("unpriced_models.sql", "tokenbook"), params, max_rows=_MAX_ROWS
            )
    except StoreError as exc:
        return _fail("prices", exc)
    print_result(columns, types, rows, args.format)
    return 0


@dataclass(frozen=True)
class RepriceResult:
    """What `reprice` did: rows examined and rows re-inserted with a new cost."""

    examined: int
    changed: int


def _cost_of(call: CallRow) -> tuple[Any, ...]:
    return (
        call.input_cost,
        call.output_cost,
        call.cache_read_cost,
        call.cache_write_cost,
        call.total_cost,
        call.currency,
        call.price_status,
    )


def reprice(
    store: Store,
    *,
    since: datetime,
    until: datetime,
    model: str = "",
    overrides: str | Path | None = None,
    progress: bool = False,
) -> RepriceResult:
    """Re-price the stored calls in [since, until) from their tokens with the current catalog.

    A call whose cost, currency or status changes is inserted again with a higher version (the
    ReplacingMergeTree keeps only the newest row of a span), then the aggregates are recomputed:
    totals change once, never double. Versions are at least the current time in microseconds, so a
    re-priced row also wins over rows written earlier with time-based versions.
    """
    from rich.progress import Progress

    from tokenbook.processor.pricing import PriceCatalog
    from tokenbook.processor.usage import Usage

    catalog = PriceCatalog(overrides=overrides)
    params = {"since": since, "until": until, "model": model}
    columns, _, rows = store.query(render_query("reprice_calls.sql", store.database), params)
    version_floor = time.time_ns() // 1000
    changed: list[CallRow] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("re-pricing", total=len(rows))
        for raw in rows:
            call = CallRow(**dict(zip(columns, raw, strict=True)))
            usage = Usage(
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cache_read_tokens=call.cache_read_tokens,
                cache_write_tokens=call.cache_write_tokens,
                reasoning_tokens=call.reasoning_tokens,
                present=True,
            )
            cost = catalog.price(
                call.provider, call.model, usage, call.timestamp, cache_hit=call.price_status == "cache_hit"
            )
            new = call._replace(
                input_cost=cost.input,
                output_cost=cost.output,
                cache_read_cost=cost.cache_read,
                cache_write_cost=cost.cache_write,
                total_cost=cost.total,
                currency=cost.currency,
                price_status=cost.status,
                price_source=cost.source,
                version=max(call.version + 1, version_floor),
            )
            if _cost_of(new) != _cost_of(call):
                changed.append(new)
            bar.advance(task)
        for start in range(0, len(changed), _REPRICE_BATCH):
            store.write(changed[start : start + _REPRICE_BATCH], [])
        store.refresh_aggregates()
    return RepriceResult(examined=len(rows), changed=len(changed))


def cmd_reprice(args: argparse.Namespace) -> int:
    """`tokenbook reprice --since ... [--until] [--model M] [--overrides FILE]`."""
    try:
        since, until = _time_range(args)
        if args.admin:
            raise StoreError("reprice writes to the store: use --data-dir (collector stopped) or --url")
        if args.url:
            store = Store.open(args.url)
        else:
            data_dir = _existing_dir(args)
            owner = current_owner(data_dir)
            if owner:
                raise StoreError(
                    f"{data_dir} is owned by the collector at {owner}; stop it first "
                    "(reprice writes, the admin API only reads)"
                )
            store = Store.open(data_dir=data_dir)
        with store:
            result = reprice(
                store,
                since=since,
                until=until,
                model=args.model or "",
                overrides=args.overrides,
                progress=True,
            )
    except (ValueError, StoreError) as exc:
        return _fail("reprice", exc)
    print(f"re-priced {result.changed} of {result.examined} calls (changed rows were replaced, not added)")
    return 0
