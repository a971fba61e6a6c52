"""Fault: a cardinality flood: every span has its own user ID and context ID.

A real collector child with a per-user quota (``per: [tenant, user]``) and a per-context budget gets
``--rate`` spans/s for ``--seconds`` (default 60 s), each span a new user and a new context, so every
span creates two budget counters. Memory must stay bounded: at most ``budgets.max_subjects`` counters
(``--max-subjects``, default the product default 100,000) are kept, the least recently used evicted and
rebuilt from the ledger when its subject comes back. The collector's RSS is sampled every second from
``/proc/<pid>/status`` (VmRSS), and ``GET /readyz`` is timed every 0.2 s. Then the load stops, the time
until the ledger holds every acknowledged span is measured, the collector is stopped and started
again (it replays whatever its log still held) and every acknowledged span must be in the ledger
exactly once, with exact totals.

Loopback only, bounded time (about ``--seconds`` + 60 s). Run:
``.venv/bin/python -m bench.faults.cardinality_flood [--seconds 60] [--rate 1000]``
(writes ``bench/results/faults_cardinality_flood.json``).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.faults.harness import (
    FaultyCollector,
    Load,
    ReadyzProbe,
    chat_request,
    replay_after_stop,
    report,
    scenario_result,
    stop_or_kill,
    verify,
    wait_caught_up,
    writer_activity,
)

TENANT = "flood"


def budget_metrics(collector: FaultyCollector) -> dict[str, float]:
    """The ``tokenbook_budget_*`` lines of ``/metrics`` (labels folded into the name)."""
    with urllib.request.urlopen(collector.admin_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tokenbook_budget_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of flood")
    parser.add_argument("--rate", type=float, default=1000, help="spans/s offered")
    parser.add_argument("--max-subjects", type=int, default=100_000, help="budgets.max_subjects")
    args = parser.parse_args()
    started = time.monotonic()
    budgets = {
        "max_subjects": args.max_subjects,
        "quotas": [
            {"name": "per-user", "per": ["tenant", "user"], "window": "1d", "limit": {"tokens": 10**9}}
        ],
        "budgets": [{"name": "per-context", "limit": {"tokens": 10**9}}],
    }
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        collector = FaultyCollector(Path(tmp) / "data", budgets=budgets).start()
        readyz = ReadyzProbe(collector)
        readyz.start()
        rss: list[tuple[float, float | None]] = [(0.0, collector.rss_mib())]
        load = Load(
            collector,
            tenant=TENANT,
            rate=args.rate,
            acked_file=Path(tmp) / "acked",
            request=functools.partial(chat_request, distinct=True),
        ).start()
        flood_started = time.monotonic()
        while (elapsed := time.monotonic() - flood_started) < args.seconds:
            time.sleep(1.0)
            rss.append((round(elapsed, 1), collector.rss_mib()))
        stats = load.stop()
        flood_s = time.monotonic() - readyz.t0
        catch_up = wait_caught_up(collector, TENANT, stats.acked_spans)
        readyz.stop.set()
        readyz.join(15)
        rss.append((round(time.monotonic() - flood_started, 1), collector.rss_mib()))
        metrics = budget_metrics(collector)
        log_bytes_at_stop = int(collector.metric("spooled_bytes"))
        exit_code, stop_s = stop_or_kill(collector, "tokenbook-cardinality-flood.log")
        writer = writer_activity(collector.log_path)
        replay = replay_after_stop(collector)
        check = verify(collector.data_dir, TENANT, Path(tmp) / "acked")
    samples = [m for _, m in rss if m is not None]
    quarter = max(len(samples) // 4, 1)
    return report(
        "cardinality_flood",
        scenario_result(
            stats,
            check,
            catch_up_s=catch_up,
            flood_s=args.seconds,
            rate_offered=args.rate,
            max_subjects=args.max_subjects,
            distinct_users=stats.acked_spans,
            distinct_contexts=stats.acked_spans,
            rss_mib_start=samples[0],
            rss_mib_peak=max(samples),
            rss_mib_end=samples[-1],
            rss_mib_mean_first_quarter=round(sum(samples[:quarter]) / quarter, 1),
            rss_mib_mean_last_quarter=round(sum(samples[-quarter:]) / quarter, 1),
            rss_mib_samples=rss,
            budget_counters=sum(v for k, v in metrics.items() if k.startswith("tokenbook_budget_counters{")),
            budget_evicted=metrics.get("tokenbook_budget_evicted_total"),
            budget_errors=metrics.get("tokenbook_budget_errors_total"),
            readyz_during_flood=readyz.summary(0, flood_s),
            readyz_after_flood=readyz.summary(flood_s),
            log_bytes_at_stop=log_bytes_at_stop,
            **writer,
            final_exit_code=exit_code,
            stop_s=stop_s,
            **replay,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.cardinality_flood --seconds {args.seconds:g} "
            f"--rate {args.rate:g} --max-subjects {args.max_subjects}",
        ),
    )


if __name__ == "__main__":
    main()
