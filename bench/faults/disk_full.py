"""Fault: the write-ahead log's filesystem fills up (a real, small tmpfs), under load.

The spool directory is a ``--fs-bytes`` tmpfs (default 4 MiB; mounting needs root), far below
``storage.spool.max_bytes``, so the disk fills before the spool cap. Storage goes down for ``--down``
seconds: the log grows until writes fail with ENOSPC; those requests are answered 503 /
UNAVAILABLE (nothing acknowledged that was not written; the failed tail is truncated away) and the
senders retry. Storage returns, the log drains, delivered segments are deleted, space returns and
appends succeed again by themselves. Every acknowledged span must be in the ledger exactly once.

Run (root): ``.venv/bin/python -m bench.faults.disk_full [--fs-bytes 4194304] [--down 10]``
(about 35 s; writes ``bench/results/faults_disk_full.json``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.faults.harness import (
    FaultyCollector,
    Load,
    drain_and_stop,
    report,
    scenario_result,
    verify,
    wait_caught_up,
)


def _metric(collector: FaultyCollector, name: str) -> float:
    """A metric of the collector, or -1 when it has none by that name."""
    try:
        return collector.metric(name)
    except KeyError:
        return -1


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fs-bytes", type=int, default=4 << 20)
    parser.add_argument("--down", type=float, default=10.0, help="seconds of storage outage")
    parser.add_argument("--rate", type=float, default=2000, help="spans/s offered")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        spool = Path(tmp) / "spool"
        spool.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={args.fs_bytes}", "tmpfs", str(spool)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if mounted.returncode != 0:
            sys.exit(f"disk_full needs to mount a small tmpfs (root): {mounted.stderr.strip()}")
        try:
            collector = FaultyCollector(
                Path(tmp) / "data",
                storage={
                    "batch": {"max_delay": "50ms"},
                    "spool": {"dir": str(spool / "wal"), "max_bytes": "1GiB", "segment_bytes": "256KiB"},
                },
            ).start()
            load = Load(collector, tenant="diskfull", rate=args.rate, acked_file=Path(tmp) / "acked").start()
            time.sleep(2)
            collector.storage("down")
            time.sleep(args.down)
            write_failures = _metric(collector, "wal_write_failures_total")
            spooled = collector.metric("spooled_bytes")
            collector.storage("up")
            time.sleep(5)
            stats = load.stop()
            catch_up = wait_caught_up(collector, "diskfull", stats.acked_spans)
            corrupt = _metric(collector, "wal_corrupt_records_total")
            exit_code = drain_and_stop(collector)
            check = verify(collector.data_dir, "diskfull", Path(tmp) / "acked")
        finally:
            subprocess.run(["umount", "-l", str(spool)], check=False)
    return report(
        "disk_full",
        scenario_result(
            stats,
            check,
            catch_up_s=catch_up,
            fs_bytes=args.fs_bytes,
            spooled_bytes_when_full=int(spooled),
            wal_write_failures=int(write_failures),
            wal_corrupt_records=int(corrupt),
            final_exit_code=exit_code,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.disk_full --fs-bytes {args.fs_bytes} "
            f"--down {args.down:g} --rate {args.rate:g}",
        ),
    )


if __name__ == "__main__":
    main()
