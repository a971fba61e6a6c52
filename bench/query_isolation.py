"""Ledger write latency while a worst-case allowed user query runs (embedded store).

    .venv/bin/python bench/query_isolation.py [--seconds 8] [--timeout 10]

Each mode runs in its own process (chDB hosts one data directory per process), on a fresh store:

* ``shared``: user queries on the store's own connection, under its lock: how `Store.query_readonly`
  ran before the SQL guard change (then ingest waited for the whole query, up to its timeout);
* ``separate``: user queries on chDB sessions of their own (`Store.query_readonly`: a pooled
  connection, never the writer's).

In each, a writer thread does what the collector's writer does for a batch (`Store.write` of 50
rows, `refresh_aggregates`, then a read that sees the rows) in a loop, first alone (baseline), then
while an allowed, CPU-bound user query runs: a self-join of two 100k-row scans that reads few rows,
so only ``max_execution_time`` (``--timeout``) ends it. Results: bench/results/query_isolation.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "query_isolation.json"
WORST_QUERY = (
    "SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b"
    " WHERE cityHash64(a.number, b.number) % 7 = 3"
)


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "batches": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def _run_mode(mode: str, seconds: float, timeout: float) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent))
    from bench.store_insert import _calls
    from tokenbook.collector.storage.store import Store, StoreError

    calls = _calls(100_000)
    with tempfile.TemporaryDirectory() as tmp, Store.open(data_dir=tmp, database="tokenbook") as store:
        store.migrate()
        if mode == "shared":
            store._pool = None  # every read runs on the store's own client, under its lock
        store.write(calls[:2000], [])
        store.refresh_aggregates()
        position = 2000

        def batch() -> float:
            nonlocal position
            rows = calls[position : position + 50]
            position += 50
            started = time.perf_counter()
            store.write(rows, [])
            store.refresh_aggregates()
            _, _, seen = store.query("SELECT count() FROM llm_calls")
            assert seen[0][0] >= position
            return time.perf_counter() - started

        def loop(duration: float) -> list[float]:
            out = []
            until = time.monotonic() + duration
            while time.monotonic() < until:
                out.append(batch())
                time.sleep(0.05)
            return out

        baseline = loop(2.0)
        outcome: dict[str, Any] = {}

        def user_query() -> None:
            started = time.perf_counter()
            try:
                store.query_readonly(WORST_QUERY, timeout_s=timeout)
                outcome["query"] = "finished"
            except StoreError as exc:
                outcome["query"] = str(exc).split("(")[-1].split(")")[0]  # e.g. TIMEOUT_EXCEEDED
            outcome["query_s"] = round(time.perf_counter() - started, 2)

        thread = threading.Thread(target=user_query)
        thread.start()
        time.sleep(0.5)
        loaded = loop(seconds)
        thread.join()
    return {"baseline": _summary(baseline), "during_query": _summary(loaded), **outcome}


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=10.0, help="the user query's max_execution_time")
    parser.add_argument("--mode", choices=["shared", "separate"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(_run_mode(args.mode, args.seconds, args.timeout)))
        return {}
    result: dict[str, Any] = {
        "command": " ".join(["python bench/query_isolation.py", *sys.argv[1:]]),
        "worst_query": WORST_QUERY,
        "timeout_s": args.timeout,
    }
    for mode in ("shared", "separate"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--seconds",
                str(args.seconds),
                "--timeout",
                str(args.timeout),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
