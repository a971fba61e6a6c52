"""Embedded store throughput: ledger inserts, aggregate refresh, re-delivery and report queries.

`python bench/store_insert.py [--rows N] [--batch B]` writes `bench/results/store_insert.json`.
Runs on a fresh chDB directory in a temp folder (chDB: one directory per process).

It also measures what the ledger's projections (`p_calls_by_time`, by time, migration 160, and
`p_by_trace`, by trace, migration 150) cost an insert: the same batches written to two databases of
one engine, one without the projections, alternating which goes first, with the process's CPU
seconds (the engine's threads included) of each write and the ledger's bytes once merged
(`projection_*`); and, the same way with the ledgers' merges stopped, what the store saves by writing
its blocks as they come rather than first collapsing each to the newest version of every key
(ClickHouse's ``optimize_on_insert``, on by default; `collapsed_*`, `as_written_*`).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "store_insert.json"


def _calls(n: int, seed: int = 1) -> list[CallRow]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start = now - timedelta(hours=20)
    rows = []
    for i in range(n):
        cost = Decimal(rng.randrange(1, 10**9)).scaleb(-12)
        tenant = f"tenant-{i % 20}"
        rows.append(
            CallRow(
                start + timedelta(milliseconds=i * 700),
                f"{i // 8:032x}",
                f"{i:016x}",
                "",
                f"{tenant}-ctx-{i // 40}",
                "agent",
                f"{i // 40:016x}",
                tenant,
                f"user-{i % 97}",
                f"project-{i % 7}",
                "core",
                ("chat", "search", "summarize")[i % 3],
                "svc",
                {"cost_center": f"cc-{i % 4}"},
                "openai",
                ("gpt-4o", "gpt-4o-mini", "o3")[i % 3],
                "chat",
                rng.randrange(100, 8000),
                rng.randrange(10, 900),
                rng.randrange(0, 100),
                0,
                0,
                cost,
                cost,
                cost,
                Decimal(0),
                3 * cost,
                "USD",
                "priced",
                "bench",
                None,
                "",
                0,
                "ok",
                "",
                123.0,
                now,
                1,
            )
        )
    return rows


def _rate(rows: int, seconds: float) -> int:
    return int(rows / seconds) if seconds > 0 else 0


def _alternating_insert_cpu(stores: dict[bool, Store], batches: list[list[CallRow]]) -> dict[bool, float]:
    """The process CPU seconds of writing every batch to each of two stores of one engine, batch by
    batch, alternating which goes first."""
    cpu = {True: 0.0, False: 0.0}
    for i, batch in enumerate(batches):
        for which in (True, False) if i % 2 == 0 else (False, True):
            started = time.process_time()
            stores[which].write(batch, [])
            cpu[which] += time.process_time() - started
    return cpu


@contextmanager
def _two_stores(first: str, second: str) -> Iterator[dict[bool, Store]]:
    """Two migrated databases of one engine, `first` (True) and `second` (False), closed after."""
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            True: Store.open(data_dir=tmp, database=first),
            False: Store.open(data_dir=tmp, database=second),
        }
        try:
            for store in stores.values():
                store.migrate()
            yield stores
        finally:
            for store in stores.values():
                store.close()


def _projection_cost(batches: list[list[CallRow]]) -> dict[str, Any]:
    """Insert CPU and merged ledger bytes with and without the projection, in one engine."""
    with _two_stores("with_projection", "without_projection") as stores:
        for name in ("p_calls_by_time", "p_by_trace"):
            stores[False].command(f"ALTER TABLE without_projection.llm_calls DROP PROJECTION {name}")
        cpu = _alternating_insert_cpu(stores, batches)
        sizes = {}
        for projection, store in stores.items():
            store.command("OPTIMIZE TABLE llm_calls FINAL")
            _, _, found = store.query(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} "
                "AND table = 'llm_calls' AND active",
                {"db": store.database},
            )
            sizes[projection] = int(found[0][0])
    return {
        "projection_insert_cpu_s": round(cpu[True], 2),
        "no_projection_insert_cpu_s": round(cpu[False], 2),
        "projection_insert_cpu_ratio": round(cpu[True] / cpu[False], 2) if cpu[False] else None,
        "projection_ledger_bytes_ratio": round(sizes[True] / sizes[False], 2) if sizes[False] else None,
    }


def _collapse_cost(batches: list[list[CallRow]]) -> dict[str, Any]:
    """Insert CPU of the ledger's blocks written as they come (the store's inserts) against first
    collapsed to the newest version of each key (ClickHouse's ``optimize_on_insert``, on by
    default), in one engine, with the ledgers' merges stopped so that only the inserts are counted;
    and the engine's own count of the time spent collapsing (all of it the collapsed store's)."""
    collapsing = (
        "SELECT value FROM system.events WHERE event = 'MergeTreeDataWriterMergingBlocksMicroseconds'"
    )
    rows = sum(len(batch) for batch in batches)
    with _two_stores("collapsed", "as_written") as stores:
        for store in stores.values():
            store.command(f"SYSTEM STOP MERGES {store.database}.llm_calls")
        stores[True]._insert_settings["optimize_on_insert"] = 1  # the engine's default
        before = stores[False].query(collapsing)[2]
        cpu = _alternating_insert_cpu(stores, batches)
        after = stores[False].query(collapsing)[2]
    collapse_us = (after[0][0] if after else 0) - (before[0][0] if before else 0)
    return {
        "collapsed_insert_cpu_s": round(cpu[True], 2),
        "as_written_insert_cpu_s": round(cpu[False], 2),
        "as_written_insert_cpu_ratio": round(cpu[False] / cpu[True], 2) if cpu[True] else None,
        "collapse_us_per_row": round(collapse_us / rows, 2),
    }


#: The comparisons `main` runs, each in a process of its own.
_PARTS: dict[str, Callable[[list[list[CallRow]]], dict[str, Any]]] = {
    "collapse": _collapse_cost,
    "projection": _projection_cost,
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--part", choices=sorted(_PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    calls = _calls(args.rows)
    batches = [calls[i : i + args.batch] for i in range(0, len(calls), args.batch)]
    if args.part:  # in a process of its own: the engine's first directory (see below)
        part: dict[str, Any] = _PARTS[args.part](batches)
        print(json.dumps(part))
        return part
    with tempfile.TemporaryDirectory() as tmp, Store.open(data_dir=tmp) as store:
        store.migrate()
        started = time.perf_counter()
        for batch in batches:
            store.write(batch, [])
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        keys = store.refresh_aggregates()
        first_refresh_s = time.perf_counter() - started

        # Re-delivery of every span, batch by batch, refreshing after each batch like the writer does.
        started = time.perf_counter()
        refresh_s = 0.0
        for batch in batches:
            store.write(batch, [])
            t = time.perf_counter()
            store.refresh_aggregates()
            refresh_s += time.perf_counter() - t
        redeliver_s = time.perf_counter() - started

        now = datetime.now(UTC)
        params = {"since": now - timedelta(days=1), "until": now, "tenant": "", "by": "tenant", "by_day": 0}
        started = time.perf_counter()
        _, _, by_tenant = store.query_readonly(render_query("report_by.sql", store.database), params)
        report_ms = 1000 * (time.perf_counter() - started)
        started = time.perf_counter()
        store.query_readonly(render_query("report_contexts.sql", store.database), {**params, "limit": 100})
        contexts_ms = 1000 * (time.perf_counter() - started)
        _, _, check = store.query("SELECT count(), sum(total_cost) FROM v_calls")
        # Disk footprint once merged (what retention planning needs): bytes per stored call, ledger
        # alone and with its aggregates.
        store.command("OPTIMIZE TABLE llm_calls FINAL")
        _, _, disk = store.query(
            "SELECT table, sum(bytes_on_disk) FROM system.parts "
            "WHERE database = {db:String} AND active GROUP BY table",
            {"db": store.database},
        )
        sizes = {table: int(size) for table, size in disk}
    expected = sum((c.total_cost for c in calls if c.total_cost is not None), Decimal(0))
    result = {
        "rows": args.rows,
        "batch": args.batch,
        "insert_rows_per_s": _rate(args.rows, insert_s),
        "first_refresh_keys": keys,
        "first_refresh_s": round(first_refresh_s, 3),
        "write_plus_refresh_rows_per_s": _rate(args.rows, redeliver_s),
        "refresh_ms_per_batch": round(1000 * refresh_s / len(batches), 1),
        "report_by_tenant_ms": round(report_ms, 1),
        "report_by_context_ms": round(contexts_ms, 1),
        "tenants": len(by_tenant),
        "exact_after_redelivery": check == [(args.rows, expected)],
        "ledger_bytes_per_call": round(sizes.get("llm_calls", 0) / args.rows, 1),
        "all_tables_bytes_per_call": round(sum(sizes.values()) / args.rows, 1),
    }
    # Each comparison in a fresh process: a second engine directory in one process skews it (the
    # writes of one of its databases cost up to a third more).
    for name in sorted(_PARTS):
        command = [sys.executable, __file__, "--rows", str(args.rows), "--batch", str(args.batch)]
        out = subprocess.run([*command, "--part", name], check=True, capture_output=True, text=True).stdout
        result |= json.loads(out.strip().splitlines()[-1])
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return result


if __name__ == "__main__":
    main()
