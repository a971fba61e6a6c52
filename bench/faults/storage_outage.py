"""Fault: storage unavailable for a while under load, then back.

The collector's inserts fail (as with a ClickHouse server refusing connections; see
``inject/sitecustomize.py``) for ``--down`` seconds while senders keep exporting: the write-ahead log
absorbs the traffic and requests keep being acknowledged. Then storage returns, the log drains, and
every acknowledged span must be in the ledger exactly once with exact totals.

Run: ``.venv/bin/python -m bench.faults.storage_outage [--down 15] [--rate 2000]``
(about 40 s; writes ``bench/results/faults_storage_outage.json``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.faults.harness import FaultyCollector, Load, drain_and_stop, report, scenario_result, verify


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=15.0, help="seconds of outage")
    parser.add_argument("--rate", type=float, default=2000, help="spans/s offered")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        collector = FaultyCollector(Path(tmp) / "data").start()
        load = Load(collector, tenant="outage", rate=args.rate, acked_file=Path(tmp) / "acked").start()
        time.sleep(3)
        collector.storage("down")
        acked_before = load.stats.acked_spans
        time.sleep(args.down)
        acked_during = load.stats.acked_spans - acked_before
        spooled = collector.metric("spooled_bytes")
        failures = collector.metric("insert_failures_total")
        collector.storage("up")
        time.sleep(5)
        stats = load.stop()
        exit_code = drain_and_stop(collector)
        check = verify(collector.data_dir, "outage", Path(tmp) / "acked")
    return report(
        "storage_outage",
        scenario_result(
            stats,
            check,
            outage_s=args.down,
            acked_during_outage=acked_during,
            spooled_bytes_at_end_of_outage=int(spooled),
            insert_failures=int(failures),
            final_exit_code=exit_code,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.storage_outage --down {args.down:g} "
            f"--rate {args.rate:g}",
        ),
    )


if __name__ == "__main__":
    main()
