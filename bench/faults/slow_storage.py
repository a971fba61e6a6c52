"""Fault: a slow ClickHouse: every insert takes ``--delay`` seconds (default 1.5) for a while.

Each insert takes that much longer (see ``inject/sitecustomize.py``): the writer falls
behind, the write-ahead log grows (and answers 429 / RESOURCE_EXHAUSTED with a retry hint if it
reaches ``storage.spool.max_bytes``), acknowledgements keep flowing because they only wait for the
log's fsync. Then storage is fast again, the log drains, and every acknowledged span must be in the
ledger exactly once with exact totals. A SIGKILL in the middle of the slow phase is included.

Run: ``.venv/bin/python -m bench.faults.slow_storage [--delay 1.5] [--slow 20]``
(about 60 s; writes ``bench/results/faults_slow_storage.json``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.faults.harness import (
    FaultyCollector,
    Load,
    drain_and_stop,
    percentile,
    report,
    scenario_result,
    verify,
)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=1.5, help="seconds per insert while slow")
    parser.add_argument("--slow", type=float, default=20.0, help="seconds of slowness")
    parser.add_argument("--rate", type=float, default=2000, help="spans/s offered")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        collector = FaultyCollector(Path(tmp) / "data").start()
        load = Load(collector, tenant="slow", rate=args.rate, acked_file=Path(tmp) / "acked").start()
        time.sleep(3)
        fast = list(load.stats.latencies)
        collector.storage(f"slow {args.delay}")
        time.sleep(args.slow / 2)
        collector.kill()  # and a crash while the log is behind
        collector.start()
        time.sleep(args.slow / 2)
        slow = load.stats.latencies[len(fast) :]
        spooled = collector.metric("spooled_bytes")
        collector.storage("up")
        time.sleep(5)
        stats = load.stop()
        exit_code = drain_and_stop(collector)
        check = verify(collector.data_dir, "slow", Path(tmp) / "acked")
    return report(
        "slow_storage",
        scenario_result(
            stats,
            check,
            insert_delay_s=args.delay,
            slow_s=args.slow,
            spooled_bytes_while_slow=int(spooled),
            export_p99_ms_before=round(1000 * (percentile(fast, 0.99) or 0), 1),
            export_p99_ms_while_slow=round(1000 * (percentile(slow, 0.99) or 0), 1),
            final_exit_code=exit_code,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.slow_storage --delay {args.delay:g} "
            f"--slow {args.slow:g} --rate {args.rate:g}",
        ),
    )


if __name__ == "__main__":
    main()
