"""`tokenbook report`, `tokenbook sql`, `tokenbook prices --unpriced` and `tokenbook reprice`.

Where they read: `--url` a ClickHouse server; `--admin HOST:PORT` a running
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
from typing import TYPE_CHECKING, Any, Protocol

from tokenbook.cli.context_report import print_context
from tokenbook.cli.currency import convert_report, target_currency
from tokenbook.cli.output import format_money, print_result
from tokenbook.collector.query.api import AdminQueryClient
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.location import DEFAULT_DATA_DIR
from tokenbook.collector.storage.owner import current_owner
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import QueryResult, Store, StoreError

if TYPE_CHECKING:  # prices load only for the commands that price (reprice)
    from tokenbook.collector.storage.reprice import RepriceResult

__all__ = [
    "cmd_report",
    "cmd_reprice",
    "cmd_sql",
    "cmd_unpriced",
    "engine_message",
    "existing_dir",
    "is_store",
    "open_reader",
    "parse_params",
    "parse_time",
    "report_failure",
    "rollup_window",
]

_MAX_ROWS = 100_000  # rows a CLI query may return
_MAX_REPRICE_ROWS = 10_000_000  # calls a dry run may read
_CONTEXT_LIMIT = 100  # contexts listed by `report --by context`
#: `report --by` dimensions answered from an hourly roll-up (+ the ledger for partial hours): the
#: roll-up each reads without and with --tenant. `user` is in no roll-up: it reads the ledger.
_ROLLUPS: dict[str, tuple[str, str]] = {
    "tenant": ("tenant", "tenant"),
    "model": ("model", "hourly"),
    "project": ("hourly", "hourly"),
    "team": ("hourly", "hourly"),
    "feature": ("hourly", "hourly"),
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: What the store appends to every read-only query, as the engine echoes it in its errors.
_LIMITS = re.compile(r" SETTINGS readonly = '\d+'(?:, \w+ = '[^']*')*")
#: The engine's echo of the whole query ("In scope SELECT ..."), up to the error code.
_IN_SCOPE = re.compile(r"\. In scope .*(?=\. \(\w+\)$)", re.DOTALL)


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


def _hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def rollup_window(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The whole hours [whole_since, whole_until) of [since, until) that a roll-up answers; the rest
    of the window comes from the ledger. Without a whole hour: (until, until), all from the ledger."""
    whole_since = _hour_floor(since)
    if whole_since < since:
        whole_since += timedelta(hours=1)
    whole_until = _hour_floor(until)
    if whole_since >= whole_until:
        return until, until
    return whole_since, whole_until


def existing_dir(args: argparse.Namespace) -> Path:
    """The embedded store's directory of `args` (``--data-dir``, default ``./tokenbook-data``).

    Raises `StoreError` with what to type when it does not exist.
    """
    data_dir = Path(args.data_dir or DEFAULT_DATA_DIR)
    if not data_dir.is_dir():
        raise StoreError(
            f"no embedded store in {data_dir}: start one with `tokenbook collector --data-dir {data_dir}`, "
            "or pass the store's --data-dir, --url or --admin"
        )
    return data_dir


def is_store(data_dir: Path, database: str = "tokenbook") -> bool:
    """True when `data_dir` holds an embedded store with the tokenbook schema (checked without opening
    it: opening creates chDB's folders in any directory)."""
    return (data_dir / "metadata" / f"{database}.sql").is_file()


def _store_dir(args: argparse.Namespace) -> Path:
    """The embedded store directory of `args`; StoreError when it is missing or not a store."""
    data_dir = existing_dir(args)
    if not is_store(data_dir):
        raise StoreError(
            f"{data_dir} is not a tokenbook store: pass the --data-dir of `tokenbook collector` "
            "(default ./tokenbook-data), or --url / --admin"
        )
    return data_dir


@contextmanager
def open_reader(args: argparse.Namespace) -> Iterator[_Reader]:
    """The read target of `args` (see module docstring)."""
    reader: _Reader
    if args.url:
        reader = Store.open(args.url)
    elif args.admin:
        reader = AdminQueryClient(args.admin)
    else:
        data_dir = existing_dir(args)
        owner = current_owner(data_dir)
        reader = AdminQueryClient(owner) if owner else Store.open(data_dir=_store_dir(args))
    try:
        yield reader
    finally:
        reader.close()


def engine_message(exc: Exception, *, show_query: bool = True) -> str:
    """The engine's error without what the store adds around the query (its SETTINGS, FORMAT).

    Without `show_query` (the CLI's own report SQL) the query text is left out altogether.
    """
    message = _LIMITS.sub("", str(exc)).replace(" FORMAT Native", "")
    message = message.replace(":\n  ", ": ", 1).replace("\n  ", "; ")
    if not show_query:
        message = _IN_SCOPE.sub("", message)
    if "TOO_MANY_ROWS" in message:
        message += f"; the CLI returns at most {_MAX_ROWS:,} rows: add a LIMIT or an aggregation"
    return message


def report_failure(command: str, exc: Exception, *, show_query: bool = True) -> int:
    """Print the one-line error of `command` for `exc` on stderr; returns exit code 1."""
    print(f"tokenbook {command}: {engine_message(exc, show_query=show_query)}", file=sys.stderr)
    return 1


def parse_params(raw: list[str]) -> dict[str, str]:
    """`--param NAME=VALUE` values (ClickHouse converts each to its placeholder's type)."""
    params: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"--param {item!r}: expected NAME=VALUE, e.g. --param tenant=acme")
        params[name] = value
    return params


def _ledger_hint(reader: _Reader, tenant: str) -> str:
    """What the ledger holds overall, to explain an empty window."""
    try:
        _, _, rows = reader.query_readonly(render_query("ledger_hint.sql", "tokenbook"), {"tenant": tenant})
    except (QueryRefused, StoreError):
        return ""
    count, latest = rows[0]
    if not count:
        return "the ledger holds no calls yet: send spans to the collector (tokenbook demo shows how)"
    return f"the ledger holds {count:,} calls, the latest at {_when(latest)}: try a wider --since"


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_sql(args: argparse.Namespace) -> int:
    """`tokenbook sql "SELECT ..." [--param NAME=VALUE ...] [--format table|json|csv]`."""
    try:
        params = parse_params(args.param)
        with open_reader(args) as reader:
            columns, types, rows = reader.query_readonly(args.query, params, max_rows=_MAX_ROWS)
    except (QueryRefused, StoreError) as exc:
        return report_failure("sql", exc)
    except ValueError as exc:
        print(f"tokenbook sql: {exc}", file=sys.stderr)
        return 2
    print_result(columns, types, rows, args.format, exact=args.exact)
    if not rows:
        print("tokenbook sql: the query returned no rows", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`tokenbook report --by DIM --since 24h [--until] [--tenant T] [--currency C --exchange-rates F]`,
    or `--context ID`."""
    tenant = args.tenant or ""
    hint = ""
    extra: list[tuple[Any, ...]] = []  # --context: its loops; --by prompt-part: how many were measured
    try:
        target = target_currency(args)
        if args.context:
            name, params = "report_context_calls.sql", {"context": args.context, "tenant": tenant}
        else:
            since, until = _time_range(args)
            params = {"since": since, "until": until, "tenant": tenant, "by_day": int(target is not None)}
            if args.by in ("context", "prompt-part") and target is not None:
                raise ValueError(
                    f"--currency converts each day's figures at that day's rate; --by {args.by} sums "
                    "across days: use another --by"
                )
            if args.by == "prompt-part":
                name = "report_prompt_parts.sql"
            elif args.by == "context":
                name = "report_contexts.sql"
                params["limit"] = _CONTEXT_LIMIT
            elif args.by in _ROLLUPS:
                name = "report_rollup.sql"
                whole_since, whole_until = rollup_window(since, until)
                params |= {
                    "by": args.by,
                    "source": _ROLLUPS[args.by][1 if tenant else 0],
                    "whole_since": whole_since,
                    "whole_until": whole_until,
                }
            else:
                name = "report_by.sql"
                params["by"] = args.by
        sql = render_query(name, "tokenbook")
        with open_reader(args) as reader:
            columns, types, rows = reader.query_readonly(sql, params, max_rows=_MAX_ROWS)
            if not rows:
                hint = _ledger_hint(reader, tenant)
            if args.format == "table" and (args.context or name == "report_prompt_parts.sql"):
                more = "report_context_loops.sql" if args.context else "report_prompt_coverage.sql"
                extra = reader.query_readonly(render_query(more, "tokenbook"), params)[2]
        if target is not None:
            columns, types, rows = convert_report(columns, types, rows, *target)
        elif "day" in columns:  # one constant day: not shown
            at = columns.index("day")
            columns, types = columns[:at] + columns[at + 1 :], types[:at] + types[at + 1 :]
            rows = [(*row[:at], *row[at + 1 :]) for row in rows]
    except ValueError as exc:
        print(f"tokenbook report: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        return report_failure("report", exc, show_query=False)
    if name in ("report_by.sql", "report_rollup.sql"):
        columns = [args.by if c == "key" else c for c in columns]
    if args.context and not rows:
        print(f"tokenbook report: no calls recorded for context {args.context!r}", file=sys.stderr)
        return 1
    if args.context and args.format == "table":
        print_context(columns, types, rows, extra, exact=args.exact)
        return 0
    print_result(columns, types, rows, args.format, exact=args.exact, totals=not args.context)
    if extra and name == "report_prompt_parts.sql":
        measured, estimated, calls = extra[0]
        share = f"{estimated:,} estimated by share of text"
        print(f"{measured:,} of {calls:,} billed model calls measured ({share});")
        print("the others carried no prompt content to measure and are not split")
    if not rows:
        who = f" of tenant {tenant!r}" if tenant else ""
        window = f"between {_when(since)} and {_when(until)}" if args.until else f"since {_when(since)}"
        print(f"tokenbook report: no calls{who} {window}" + (f"; {hint}" if hint else ""), file=sys.stderr)
    return 0


def cmd_unpriced(args: argparse.Namespace) -> int:
    """`tokenbook prices --unpriced [MODEL] [--provider P]`: models seen without a price."""
    params = {"model": args.model or "", "provider": args.provider or ""}
    try:
        with open_reader(args) as reader:
            columns, types, rows = reader.query_readonly(
                render_query("unpriced_models.sql", "tokenbook"), params, max_rows=_MAX_ROWS
            )
    except StoreError as exc:
        return report_failure("prices", exc)
    print_result(columns, types, rows, args.format)
    return 0


def _dry_run(args: argparse.Namespace, since: datetime, until: datetime) -> RepriceResult:
    """What re-pricing with the catalog plus `--overrides` and billing with `--books` would change;
    reads, never writes."""
    from tokenbook.collector.storage.reprice import price_again
    from tokenbook.genai.pricing.books import PriceBooks
    from tokenbook.genai.pricing.catalog import PriceCatalog

    catalog, books = PriceCatalog(args.overrides), PriceBooks(args.books)
    params = {"since": since, "until": until, "model": args.model or ""}
    with open_reader(args) as reader:
        columns, _, rows = reader.query_readonly(
            render_query("reprice_calls.sql", "tokenbook"), params, max_rows=_MAX_REPRICE_ROWS
        )
    return price_again(columns, rows, catalog, books=books)[1]


def cmd_reprice(args: argparse.Namespace) -> int:
    """`tokenbook reprice --since ... [--until] [--model M] [--overrides FILE] [--books FILE] [--dry-run]`.

    On a server (`--url`) or a stopped embedded store it re-prices here, with the catalog plus
    `--overrides`, and bills again with `--books`. When a collector owns the store (or with `--admin`)
    the collector does it: it reloads its own `pricing.overrides` and `pricing.books` first, so new and
    stored calls get the same prices and bills. `--dry-run` prices with the catalog plus `--overrides`
    and `--books` here and writes nothing, wherever it reads.
    """
    from tokenbook.collector.storage.reprice import reprice
    from tokenbook.genai.pricing.books import PriceBooks
    from tokenbook.genai.pricing.catalog import PriceCatalog
    from tokenbook.genai.pricing.fields import PriceConfigError

    try:
        since, until = _time_range(args)
        if args.overrides:
            PriceCatalog(args.overrides)  # a bad file is reported before anything is read
        if args.books:
            PriceBooks(args.books)
        if args.dry_run:
            result = _dry_run(args, since, until)
            _print_reprice(result, dry_run=True)
            return 0
        owner = args.admin or (None if args.url else current_owner(existing_dir(args)))
        if owner:
            if args.overrides or args.books:
                flag, key = (
                    ("--overrides", "pricing.overrides") if args.overrides else ("--books", "pricing.books")
                )
                raise StoreError(
                    f"the collector at {owner} prices with its own {key}: edit that file and run reprice "
                    f"without {flag} (or preview with --dry-run {flag} FILE)"
                )
            result = AdminQueryClient(owner).reprice(since=since, until=until, model=args.model or "")
            print(f"re-priced {result.changed:,} of {result.examined:,} calls in the collector at {owner}")
            return 0
        else:
            from rich.progress import Progress

            catalog, books = PriceCatalog(args.overrides), PriceBooks(args.books)
            with (
                Store.open(args.url) if args.url else Store.open(data_dir=_store_dir(args)) as store,
                Progress(transient=True) as bar,
            ):
                task = bar.add_task("re-pricing", total=None)
                result = reprice(
                    store,
                    catalog,
                    books=books,
                    since=since,
                    until=until,
                    model=args.model or "",
                    on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
    except PriceConfigError as exc:
        print(f"tokenbook reprice: {engine_message(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"tokenbook reprice: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        return report_failure("reprice", exc)
    _print_reprice(result, dry_run=False)
    return 0


def _print_reprice(result: RepriceResult, *, dry_run: bool) -> None:
    billed = ""
    if result.old_billed != result.new_billed:
        billed = f"; billed {format_money(result.old_billed)} -> {format_money(result.new_billed)}"
    if dry_run:
        print(
            f"dry run: would re-price {result.changed:,} of {result.examined:,} calls; their cost "
            f"{format_money(result.old_total)} -> {format_money(result.new_total)} "
            f"(exact {format_money(result.old_total, exact=True)} -> "
            f"{format_money(result.new_total, exact=True)}){billed}; nothing was written"
        )
    else:
        cost = f"; their cost {format_money(result.old_total)} -> {format_money(result.new_total)}{billed}"
        print(
            f"re-priced {result.changed:,} of {result.examined:,} calls (changed rows were replaced, not "
            f"added){cost if result.changed else ''}"
        )
    if result.lost_price:
        verb = "would lose" if dry_run else "lost"
        print(
            f"tokenbook reprice: warning: {result.lost_price:,} calls {verb} their price (no price for "
            "their model at their time): their cost is NULL, not 0; `tokenbook prices --unpriced` lists "
            "them, a price overrides file (--overrides) prices them",
            file=sys.stderr,
        )
