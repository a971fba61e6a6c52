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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from rich.progress import Progress

from tokenbook.cli.output import print_result
from tokenbook.collector.query.api import AdminQueryClient
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.location import DEFAULT_DATA_DIR
from tokenbook.collector.storage.owner import current_owner
from tokenbook.collector.storage.reprice import reprice
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import QueryResult, Store, StoreError
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.overrides import PriceConfigError

__all__ = ["cmd_report", "cmd_reprice", "cmd_sql", "cmd_unpriced", "parse_time"]

_MAX_ROWS = 100_000  # rows a CLI query may return
_CONTEXT_LIMIT = 100  # contexts listed by `report --by context`
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
    data_dir = Path(args.data_dir or DEFAULT_DATA_DIR)
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


def cmd_reprice(args: argparse.Namespace) -> int:
    """`tokenbook reprice --since ... [--until] [--model M] [--overrides FILE]`.

    On a server (`--url`) or a stopped embedded store it re-prices here, with the catalog plus
    `--overrides`. When a collector owns the store (or with `--admin`) the collector does it: it
    reloads its own `pricing.overrides` first, so new and stored calls get the same prices.
    """
    try:
        since, until = _time_range(args)
        owner = args.admin or (None if args.url else current_owner(_existing_dir(args)))
        if owner:
            if args.overrides:
                raise ValueError(
                    f"the collector at {owner} prices with its own pricing.overrides: edit that file "
                    "and run reprice without --overrides"
                )
            result = AdminQueryClient(owner).reprice(since=since, until=until, model=args.model or "")
        else:
            catalog = PriceCatalog(args.overrides)
            with (
                Store.open(args.url) if args.url else Store.open(data_dir=_existing_dir(args)) as store,
                Progress(transient=True) as bar,
            ):
                task = bar.add_task("re-pricing", total=None)
                result = reprice(
                    store,
                    catalog,
                    since=since,
                    until=until,
                    model=args.model or "",
                    on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
    except (ValueError, StoreError, PriceConfigError) as exc:
        return _fail("reprice", exc)
    print(f"re-priced {result.changed} of {result.examined} calls (changed rows were replaced, not added)")
    return 0
