"""Capacity figures for a fleet on one ClickHouse: parts per insert batch, active parts after merges,
and the cost of one budget reconciliation (`budgets.fleet_sync`) over a ledger of `--rows` calls.

`python bench/fleet_capacity.py [--rows N] [--batch B]` writes `bench/results/fleet_capacity.json`.
Runs on a fresh chDB directory in a temp folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.store_insert import _calls
from tokenbook.collector.budgets import parse_budgets
from tokenbook.collector.budgets.evaluator import BudgetEvaluator
from tokenbook.collector.budgets.fleet import FleetSync
from tokenbook.collector.storage.store import Store

RESULT = Path(__file__).resolve().parent / "results" / "fleet_capacity.json"
_PARTS = "SELECT table, count() FROM system.parts WHERE database = {db:String} AND active GROUP BY table"


def _parts(store: Store) -> dict[str, int]:
    return {t: int(n) for t, n in store.query(_PARTS, {"db": store.database})[2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(data_dir=Path(tmp), database="bench")
        store.migrate()
        calls = _calls(args.rows)
        before = _parts(store)
        started = time.perf_counter()
        batches = 0
        for i in range(0, len(calls), args.batch):
            store.write(calls[i : i + args.batch], [])
            batches += 1
        insert_s = time.perf_counter() - started
        after = _parts(store)
        time.sleep(5)  # background merges
        settled = _parts(store)
        cfg, problems = parse_budgets(
            {"quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 10**9}}],
             "budgets": [{"name": "run", "limit": {"tokens": 10**9}}]}
        )  # fmt: skip
        assert not problems
        evaluator = BudgetEvaluator(cfg, publish=lambda _: None)
        fleet = FleetSync(evaluator, 2.0)
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            fleet.sync(store)  # the first one is a full reconciliation, the next only active subjects
            timings.append(time.perf_counter() - t0)
        result: dict[str, Any] = {
            "rows": args.rows,
            "batch": args.batch,
            "insert_batches": batches,
            "rows_per_s": round(args.rows / insert_s),
            "active_parts_before": before,
            "active_parts_after_inserts": after,
            "active_parts_after_5s": settled,
            "sync_seconds": [round(t, 3) for t in timings],
        }
        store.close()
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
