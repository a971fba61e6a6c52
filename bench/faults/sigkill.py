"""Fault: SIGKILL of the collector under load, at random moments, repeated (default 20 times).

Senders export continuously over OTLP/HTTP and OTLP/gRPC (retrying while the collector is down, as an
exporter does). Each cycle waits a random 0.3-3 s after the collector is up, kills it with SIGKILL and
starts it again at once. At the end storage drains, the collector stops cleanly, and every
acknowledged span must be in the ledger exactly once with exact totals.

Run: ``.venv/bin/python -m bench.faults.sigkill [--kills 20] [--rate 2000] [--seed 1]``
(about 3-4 minutes; writes ``bench/results/faults_sigkill.json``).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.faults.harness import FaultyCollector, Load, drain_and_stop, report, scenario_result, verify


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2000, help="spans/s offered")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        collector = FaultyCollector(Path(tmp) / "data").start()
        load = Load(collector, tenant="sigkill", rate=args.rate, acked_file=Path(tmp) / "acked").start()
        kill_points = []
        for _ in range(args.kills):
            time.sleep(rng.uniform(0.3, 3.0))
            kill_points.append(load.stats.acked_spans)
            collector.kill()
            collector.start()
        time.sleep(2)
        stats = load.stop()
        exit_code = drain_and_stop(collector)
        check = verify(collector.data_dir, "sigkill", Path(tmp) / "acked")
    return report(
        "sigkill",
        scenario_result(
            stats,
            check,
            kills=args.kills,
            acked_at_each_kill=kill_points,
            final_exit_code=exit_code,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.sigkill --kills {args.kills} --rate {args.rate:g} "
            f"--seed {args.seed}",
        ),
    )


if __name__ == "__main__":
    main()
