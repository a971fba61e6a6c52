"""Sustained load: half the collector benchmark's throughput for 5 minutes, with SIGKILL/restart cycles
and duplicate re-sends, on loopback.

The offered rate is half of ``spans_per_s`` in ``bench/results/collector_throughput.json`` (or
``--rate``). Senders (half OTLP/HTTP protobuf, half OTLP/gRPC, `bench.faults.harness.Load`) export
unique chat spans in batches of 500, retry every refused request with the same body, and send one
already acknowledged batch again every 10 batches on purpose. Every ``--kill-every`` seconds (random
within +-50%) the collector is killed with SIGKILL and restarted at once. The collector's RSS is
sampled every 5 s. At the end storage drains, the collector stops cleanly and the exactness check of
`bench.faults.harness.verify` runs: every acknowledged span in the ledger exactly once, totals exact.

Reported: offered and achieved rate, p50/p99 export latency (acknowledged requests), RSS samples and
the peak of each process life, and the exactness figures. Not part of the test suite.
Run: ``.venv/bin/python bench/sustained_load.py [--seconds 300] [--kill-every 60] [--rate R]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.faults.harness import (  # noqa: E402
    FaultyCollector,
    Load,
    drain_and_stop,
    percentile,
    scenario_result,
    verify,
)

RESULT = HERE / "results" / "sustained_load.json"
THROUGHPUT = HERE / "results" / "collector_throughput.json"


def _half_of_benchmark() -> float:
    """Half the collector's own figure: the median ``stub`` run (spans encoded before the clock starts)."""
    measured = json.loads(THROUGHPUT.read_text(encoding="utf-8"))
    medians = measured.get("median_runs", [])
    stub = [r for r in medians if str(r.get("mode", "")).startswith("stub")]
    return float(stub[0]["spans_per_s"]) / 2


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=None, help="spans/s (default: half the benchmark)")
    parser.add_argument("--kill-every", type=float, default=60.0, help="mean seconds between SIGKILLs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rate = args.rate or _half_of_benchmark()
    rng = random.Random(args.seed)
    rss: list[tuple[float, int, float]] = []  # (seconds since start, process life, MiB)
    with tempfile.TemporaryDirectory(prefix="tokenbook-sustained-") as tmp:
        collector = FaultyCollector(Path(tmp) / "data").start()
        load = Load(
            collector,
            tenant="sustained",
            rate=rate,
            batch=500,
            resend_every=10,
            acked_file=Path(tmp) / "acked",
        ).start()
        started = time.monotonic()
        life, kills = 0, []
        next_kill = started + rng.uniform(0.5, 1.5) * args.kill_every
        next_sample = started
        while (now := time.monotonic()) < started + args.seconds:
            if now >= next_sample:
                mib = collector.rss_mib()
                if mib is not None:
                    rss.append((round(now - started, 1), life, mib))
                next_sample += 5
            if now >= next_kill:
                collector.kill()
                kills.append(round(now - started, 1))
                collector.start()
                life += 1
                next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * args.kill_every
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        stats = load.stop()
        exit_code = drain_and_stop(collector, timeout=600)
        check = verify(collector.data_dir, "sustained", Path(tmp) / "acked")
    peaks = {life_no: max(m for _, n, m in rss if n == life_no) for life_no in {n for _, n, _ in rss}}
    result = scenario_result(
        stats,
        check,
        seconds=round(elapsed, 1),
        offered_spans_per_s=round(rate),
        acked_spans_per_s=round(stats.acked_spans / elapsed),
        kills_at_s=kills,
        rss_mib_samples=rss,
        rss_mib_peak_per_life=peaks,
        final_exit_code=exit_code,
        export_p90_ms=round(1000 * (percentile(stats.latencies, 0.9) or 0), 1),
        command=f".venv/bin/python bench/sustained_load.py --seconds {args.seconds:g} "
        f"--kill-every {args.kill_every:g} --rate {rate:g} --seed {args.seed}",
    )
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    columns = [
        *("seconds", "offered_spans_per_s", "acked_spans_per_s", "export_p50_ms", "export_p99_ms"),
        *("lost", "doubled"),
    ]
    print(" ".join(f"{c:>19}" for c in columns))
    print(" ".join(f"{result[c]!s:>19}" for c in columns))
    print(f"kills at {kills}; RSS peak per life (MiB): {peaks}; totals exact: {result['totals_exact']}")
    return result


if __name__ == "__main__":
    main()
