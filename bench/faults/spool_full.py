"""Fault: a full disk for the write-ahead log, simulated with a small ``storage.spool.max_bytes``.

With storage down, the log fills up to its limit (``--spool-bytes``, default 2 MiB) and the receivers
answer 503 / UNAVAILABLE with a retry hint; senders keep retrying. Storage returns, the log drains,
the retried requests are acknowledged, and every acknowledged span must be in the ledger exactly once
with exact totals.

Run: ``.venv/bin/python -m bench.faults.spool_full [--spool-bytes 2097152] [--down 15]``
(about 40 s; writes ``bench/results/faults_spool_full.json``).
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
    parser.add_argument("--spool-bytes", type=int, default=2 << 20)
    parser.add_argument("--down", type=float, default=15.0, help="seconds of storage outage")
    parser.add_argument("--rate", type=float, default=2000, help="spans/s offered")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        collector = FaultyCollector(
            Path(tmp) / "data",
            storage={
                "batch": {"max_delay": "50ms"},
                "spool": {"max_bytes": args.spool_bytes, "segment_bytes": "256KiB"},
            },
        ).start()
        load = Load(collector, tenant="spoolfull", rate=args.rate, acked_file=Path(tmp) / "acked").start()
        time.sleep(2)
        collector.storage("down")
        time.sleep(args.down)
        spooled = collector.metric("spooled_bytes")
        refused = collector.metric("refused_requests_total")
        collector.storage("up")
        time.sleep(5)
        stats = load.stop()
        exit_code = drain_and_stop(collector)
        check = verify(collector.data_dir, "spoolfull", Path(tmp) / "acked")
    return report(
        "spool_full",
        scenario_result(
            stats,
            check,
            spool_max_bytes=args.spool_bytes,
            spooled_bytes_when_full=int(spooled),
            refused_requests_while_full=int(refused),
            final_exit_code=exit_code,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.spool_full --spool-bytes {args.spool_bytes} "
            f"--down {args.down:g} --rate {args.rate:g}",
        ),
    )


if __name__ == "__main__":
    main()
