"""Capacity figures for a fleet of collectors on one ClickHouse server (one shard).

Two measurements, against `--url` or, by default, the ClickHouse HTTP test server of the test suite
(the real engine behind ClickHouse's HTTP interface, in its own process: a stand-in for one shard on
the same two cores, so a lower bound):

* **inserts**: `--writers` threads, each its own `Store` (a collector's writer), insert `--rows`
  ledger rows in batches of `--batch`, concurrently: rows/s and inserts/s the shard took, new
  `llm_calls` parts per insert, and active parts right after and `--settle` seconds later (merges);
* **reconciliation**: one collector's `budgets.fleet_sync` step (its decision pass excluded) over that
  ledger, with one daily quota per tenant, one budget per context and the breaker: the first
  reconciliation (reads the breaker's whole history), then `--syncs` incremental ones, each after a
  batch of `--live` new calls of every tenant (all subjects active): seconds and queries per sync.

`python bench/fleet_capacity.py [--url URL] [--rows 200000] [--batch 5000] [--writers 3]` writes
`bench/results/fleet_capacity.json` (`--result` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.store_insert import _calls  # noqa: E402
from tokenbook.collector.budgets import parse_budgets  # noqa: E402
from tokenbook.collector.budgets.evaluator import BudgetEvaluator  # noqa: E402
from tokenbook.collector.budgets.fleet import FleetSync  # noqa: E402
from tokenbook.collector.storage.ledger import CallRow  # noqa: E402
from tokenbook.collector.storage.store import Store  # noqa: E402

RESULT = REPO / "bench" / "results" / "fleet_capacity.json"
TENANTS = 20
_PARTS = "SELECT count() FROM system.parts WHERE database = {db:String} AND table = 'llm_calls' AND active"


class _Counting:
    """A store that counts the queries run through it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.database = store.database
        self.queries = 0

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        self.queries += 1
        return self.store.query(sql, parameters)


def _ledger(n: int, now: datetime, seed: int) -> list[CallRow]:
    """`n` calls of `TENANTS` tenants in today's and yesterday's windows, ingested over the last hour."""
    return [
        c._replace(
            tenant_id=f"tenant-{i % TENANTS}",
            timestamp=now - timedelta(seconds=(i * 7) % 80_000),
            ingested_at=now - timedelta(seconds=(i * 13) % 3_600),
            span_id=f"{seed:04x}{i:012x}",
        )
        for i, c in enumerate(_calls(n, seed=seed))
    ]


def _parts(store: Store) -> int:
    return int(store.query(_PARTS, {"db": store.database})[2][0][0])


def _inserts(url: str, database: str, rows: list[CallRow], batch: int, writers: int) -> dict[str, Any]:
    stores = [Store.open(url, database=database) for _ in range(writers)]
    shares = [rows[i::writers] for i in range(writers)]
    inserts = [0] * writers
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(0, len(shares[k]), batch):
                stores[k].write(shares[k][i : i + batch], [])
                inserts[k] += 1
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    before = _parts(stores[0])
    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    after = _parts(stores[0])
    for s in stores:
        s.close()
    return {
        "rows": len(rows),
        "batch": batch,
        "writers": writers,
        "inserts": sum(inserts),
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(rows) / seconds),
        "inserts_per_s": round(sum(inserts) / seconds, 1),
        "active_parts_before": before,
        "active_parts_after": after,
    }


def _reconciliation(store: Store, syncs: int, live: int) -> dict[str, Any]:
    raw = {
        "quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 10**12}}],
        "budgets": [{"name": "run", "limit": {"tokens": 10**12}}],
        "breaker": {"enabled": True, "max_tokens": 10**12},
    }
    cfg, problems = parse_budgets(raw)
    assert not problems, problems
    evaluator = BudgetEvaluator(cfg, publish=lambda _: None, fleet=True)
    fleet = FleetSync(evaluator, 2.0)
    source = _Counting(store)
    t0 = time.perf_counter()
    fleet.sync(source)
    first = time.perf_counter() - t0
    first_queries, source.queries = source.queries, 0
    timings = []
    for k in range(syncs):
        now = datetime.now(UTC)
        batch = [c._replace(ingested_at=now) for c in _ledger(live, now, seed=1000 + k)]
        store.write(batch, [])
        t0 = time.perf_counter()
        fleet.sync(source)
        timings.append(time.perf_counter() - t0)
    return {
        "rules": "1 daily quota per tenant, 1 budget per context, the breaker",
        "first_seconds": round(first, 3),
        "first_queries": first_queries,
        "incremental_seconds": [round(t, 3) for t in timings],
        "incremental_median_s": round(statistics.median(timings), 3),
        "queries_per_sync": source.queries // max(syncs, 1),
        "live_calls_per_sync": live,
        "counters": fleet.last.counters if fleet.last is not None else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--url", help="a ClickHouse server (default: the HTTP test server, started here)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--syncs", type=int, default=5)
    ap.add_argument("--live", type=int, default=1_000)
    ap.add_argument("--result", type=Path, default=RESULT, help="where the JSON goes")
    args = ap.parse_args()
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        if url is None:
            from tests.clickhouse_http.fixture import ClickHouseHTTPProcess

            server = ClickHouseHTTPProcess(Path(tmp) / "data").start()
            url = server.url
        database = f"bench_fleet_{uuid.uuid4().hex[:8]}"
        try:
            store = Store.open(url, database=database)
            store.migrate()
            rows = _ledger(args.rows, datetime.now(UTC), seed=1)
            inserts = _inserts(url, database, rows, args.batch, args.writers)
            time.sleep(args.settle)
            inserts["active_parts_after_settle"] = _parts(store)
            inserts["settle_s"] = args.settle
            reconciliation = _reconciliation(store, args.syncs, args.live)
            store.command(f"DROP DATABASE IF EXISTS {database}")
            store.close()
        finally:
            if server is not None:
                server.stop()
    command = " ".join(["python", "bench/fleet_capacity.py", *sys.argv[1:]])
    test_server = "ClickHouse HTTP test server (chDB behind HTTP, same 2 cores)"
    result = {
        "server": test_server if args.url is None else "url",
        "inserts": inserts,
        "reconciliation": reconciliation,
        "command": command,
    }
    args.result.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
