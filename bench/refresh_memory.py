"""Memory of one aggregate refresh after a burst, in one process: what the collector's refresh holds.

Writes the rows of ``--spans`` throughput-benchmark spans (`collector_throughput.agent_run`: 3 priced
calls, a tool step and a wrapper step per agent run, one context each) into an embedded store in
batches of ``storage.batch.max_rows``, as the collector's writer does, then runs one
`Store.refresh_aggregates()` (contexts, billing decisions, hourly roll-ups) of everything written,
and reports:

* the process's RSS before the refresh and its peak during it (sampled every 20 ms from
  ``/proc/self/status``; VmHWM is not used: the writes before may have peaked higher);
* the engine's own accounting during the refresh: the peak of ``MemoryTracking`` in
  ``system.metrics`` (everything the engine has allocated), sampled on another connection;
* with ``--tracemalloc``, the Python heap's peak during the refresh (slower; a separate run, since
  tracing holds memory of its own);
* how many refresh slices ran, and the aggregates' totals (the same whatever the slicing);
* the process's CPU seconds in the inserts and in the refresh, and its peak RSS (VmHWM) over the
  inserts: what the allocators' settings cost and save.

``--max-keys`` sets ``storage.refresh.max_keys`` (keys per refresh slice), ``--dirty-decay``
``storage.clickhouse.engine.dirty_decay`` (seconds), ``--heap-arenas`` ``heap.arenas`` and
``--heap-mmap-threshold`` ``heap.mmap_threshold`` (bytes; the collector's defaults otherwise, 0: the C
library's). Compare settings by running the script once per setting (each run is a fresh process and
store).

Run: ``.venv/bin/python bench/refresh_memory.py [--spans 100000] [--max-keys 5000] [--tracemalloc]
[--dirty-decay 0] [--heap-arenas 2] [--heap-mmap-threshold 262144]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from collector_throughput import SPANS_PER_RUN, _build_spans

HERE = Path(__file__).resolve().parent


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Sampler:
    """Peak RSS of this process and of the engine's ``MemoryTracking``, sampled on a thread."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.peak_rss = 0.0
        self.peak_engine = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sql = "SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'"
        tick = 0
        while not self._stop.wait(0.02):
            self.peak_rss = max(self.peak_rss, _rss_mib())
            tick += 1
            if tick % 5 == 0:  # the engine's figure every 0.1 s: a query costs more than a /proc read
                rows = self.store.query(sql)[2]
                if rows:
                    self.peak_engine = max(self.peak_engine, rows[0][0] / 1024 / 1024)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(
    spans: int,
    max_keys: int | None,
    trace: bool,
    max_rows: int = 20_000,
    *,
    dirty_decay: float | None = None,
    heap: tuple[int | None, int | None] = (None, None),
) -> dict[str, Any]:
    """Write `spans` spans' rows, then measure one refresh of them (see the module docstring);
    `dirty_decay` and `heap` (arenas, mmap threshold): the allocators' settings, None: the defaults."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tokenbook.collector.config import HeapConfig
    from tokenbook.collector.decode.spans import decode_protobuf
    from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
    from tokenbook.collector.storage.config import EngineConfig, RefreshConfig
    from tokenbook.collector.storage.engine import tune_heap
    from tokenbook.collector.storage.store import Store
    from tokenbook.genai.pricing.catalog import PriceCatalog

    tuning = HeapConfig().tuning()
    tuning = tuning._replace(
        arenas=tuning.arenas if heap[0] is None else heap[0],
        mmap_threshold=tuning.mmap_threshold if heap[1] is None else heap[1],
        trim_threshold=tuning.trim_threshold if heap[1] is None or heap[1] else 0,
    )
    tune_heap(tuning)  # as the collector does at start
    engine = EngineConfig() if dirty_decay is None else EngineConfig(dirty_decay=dirty_decay)

    built = _build_spans(spans // SPANS_PER_RUN, 0)
    keys = pipeline_keys((), "drop")
    builder = RowBuilder(PriceCatalog())
    bodies = [encode_spans(built[i : i + 512]).SerializeToString() for i in range(0, len(built), 512)]
    del built
    refresh = RefreshConfig() if max_keys is None else RefreshConfig(max_keys=max_keys)
    with (
        tempfile.TemporaryDirectory(prefix="tokenbook-refresh-memory-") as tmp,
        Store.open(data_dir=Path(tmp) / "db", refresh=refresh, engine=engine) as store,
    ):
        store.migrate()
        calls: list[Any] = []
        steps: list[Any] = []
        insert_cpu = 0.0

        def write(calls: list[Any], steps: list[Any]) -> None:
            nonlocal insert_cpu
            started = time.process_time()
            store.write(calls, steps)
            insert_cpu += time.process_time() - started

        for body in bodies:
            rows = builder.build(decode_protobuf(body, keys).records)
            calls += rows.calls
            steps += rows.steps
            if len(calls) + len(steps) >= max_rows:
                write(calls, steps)
                calls, steps = [], []
        if calls or steps:
            write(calls, steps)
        peak_writes = _peak_rss_mib()
        del bodies, calls, steps
        gc.collect()
        before = _rss_mib()
        if trace:
            tracemalloc.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        with _Sampler(store) as sampler:
            recomputed = store.refresh_aggregates()
        seconds, refresh_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        heap_peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024 if trace else None
        if trace:
            tracemalloc.stop()
        after = _rss_mib()
        totals = store.query(
            "SELECT count(), sum(calls), toString(sum(total_cost)) FROM context_costs FINAL"
        )[2][0]
        hourly = store.query("SELECT sum(calls), toString(sum(total_cost)) FROM cost_hourly FINAL")[2][0]
    return {
        "spans": spans,
        "max_keys": refresh.max_keys,
        "dirty_decay_s": engine.dirty_decay,
        "heap": tuning._asdict(),
        "insert_cpu_s": round(insert_cpu, 2),
        "rss_peak_over_inserts_mib": round(peak_writes, 1),
        "refresh_cpu_s": round(refresh_cpu, 2),
        "keys_recomputed": recomputed,
        "refresh_seconds": round(seconds, 2),
        "rss_before_refresh_mib": round(before, 1),
        "rss_peak_during_refresh_mib": round(sampler.peak_rss, 1),
        "rss_after_refresh_mib": round(after, 1),
        "engine_memory_tracking_peak_mib": round(sampler.peak_engine, 1),
        "python_heap_peak_mib": None if heap_peak is None else round(heap_peak, 1),
        "context_costs": {"contexts": totals[0], "calls": totals[1], "total_cost": totals[2]},
        "cost_hourly": {"calls": hourly[0], "total_cost": hourly[1]},
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--max-keys", type=int, default=None, help="storage.refresh.max_keys")
    parser.add_argument("--tracemalloc", action="store_true", help="also the Python heap's peak")
    parser.add_argument("--dirty-decay", type=float, default=None, help="engine.dirty_decay, seconds")
    parser.add_argument("--heap-arenas", type=int, default=None, help="heap.arenas (0: glibc's)")
    parser.add_argument("--heap-mmap-threshold", type=int, default=None, help="heap.mmap_threshold")
    parser.add_argument("--out", type=Path, default=None, help="append the result to this JSON list")
    args = parser.parse_args(argv)
    result = run(
        args.spans,
        args.max_keys,
        args.tracemalloc,
        dirty_decay=args.dirty_decay,
        heap=(args.heap_arenas, args.heap_mmap_threshold),
    )
    result["command"] = "nice .venv/bin/python bench/refresh_memory.py " + " ".join(argv)
    print(json.dumps(result, indent=2))
    if args.out is not None:
        done = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps([*done, result], indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
