"""Collector restart on a store with millions of recently ingested rows: time to ``/readyz`` and peak RSS.

`python bench/restart.py [--rows 5000000] [--max-keys 1000000] [--observe 120] [--cases ...]
[--slices N] [--out ...]`

Builds an embedded store whose `--rows` calls were all ingested in the last 24 hours (the synthetic
ledger of `bench/query_latency.py`), then starts ``tokenbook collector`` on it (a child process) for
each case and records the seconds until ``/healthz`` answers 200 (the receivers serve: ``serving_s``)
and until ``/readyz`` does (the writer runs: ``ready_s``), the process's peak RSS (VmHWM) then,
and, sampling every 0.5 s for `--observe` seconds after that (the background warm-up of the dedup
memory and the recomputation included), the peak RSS over the whole run, the seconds the warm-up and
the recomputation took (from their log lines; null when not finished within the observation) and the
recomputation's progress:

* ``clean``: the refresh watermark says everything is refreshed (as a clean stop leaves it);
* ``unclean``: the watermark is 5 minutes old (a crash 5 minutes after the last complete refresh);
* ``no_watermark``: no watermark (the first start after upgrading): recomputes what was ingested in
  the last ``dedup.warm_hours``, in the background (``--no-watermark`` runs this case alone; give it
  an ``--observe`` long enough to finish);
* ``budgets``: ``clean`` with the rules of `bench/budget_reads.py` (a month's quota per tenant, a
  day's per tenant and user of one tag, a budget per context), whose counters the collector rebuilds
  from the ledger once its receivers serve (``rebuild_s``: from its log line).

Each case also records the CPU seconds the collector used (user + system, all threads). With
``--slices N``, before the collector runs, the recovery without a watermark is also timed in this
process on the same store: its first N slices of ``recover_rows`` rows, as the collector runs them
(``refresh_aggregates(since=..., slices=1, hourly=False)``), each slice's wall and CPU seconds, and
the whole recovery's projected from their medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from budget_reads import RULES  # noqa: E402
from memsample import TreeMemory  # noqa: E402
from query_latency import build_ledger  # noqa: E402

from tests.collector.collector_process import CollectorProcess  # noqa: E402
from tokenbook.collector.storage.store import Store  # noqa: E402

RESULT = HERE / "results" / "restart.json"
WATERMARK = "refresh-watermark.json"


def _status(pid: int) -> dict[str, float]:
    text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    out = {}
    for line in text.splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _ok(url: str) -> bool:
    """Whether GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _case(
    data_dir: Path, watermark: datetime | None, max_keys: int, observe: float, budgets: dict[str, Any]
) -> dict[str, Any]:
    path = data_dir / WATERMARK
    if watermark is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps({"refreshed_until": watermark.isoformat()}), encoding="utf-8")
    collector = CollectorProcess(data_dir, dedup={"max_keys": max_keys}, budgets=budgets)
    collector.log_path.unlink(missing_ok=True)
    started = time.perf_counter()
    starting = threading.Thread(target=collector.start, kwargs={"timeout": 600})
    starting.start()  # it waits for readiness: the tree is sampled from its first moments meanwhile
    while collector.proc is None:
        time.sleep(0.005)
    memory = TreeMemory(collector.proc.pid, interval=0.1).__enter__()
    while not _ok(collector.admin_url + "/healthz"):
        time.sleep(0.02)
    serving_s = time.perf_counter() - started
    while not _ok(collector.admin_url + "/readyz"):
        time.sleep(0.05)
    ready_s = time.perf_counter() - started
    starting.join()
    at_ready = _status(collector.proc.pid)
    now = memory.sample()
    tree_at_ready = (memory.peak_rss_mib, memory.peak_pss_mib, now)
    cpu_at_ready = _cpu_s(collector.proc.pid)
    samples = []
    until = time.perf_counter() + observe
    while time.perf_counter() < until:
        samples.append((round(time.perf_counter() - started, 1), _status(collector.proc.pid)["VmRSS"]))
        if any(line.get("msg") == "aggregates recomputed after restart" for line in collector.log_lines()):
            break
        time.sleep(0.5)
    later = _status(collector.proc.pid)
    cpu_at_end = _cpu_s(collector.proc.pid)
    memory.__exit__()
    lines = collector.log_lines()
    collector.stop()

    def line(msg: str) -> dict[str, Any]:
        return next((x for x in lines if x.get("msg") == msg), {})

    warm, recovered = line("dedup memory warmed from storage"), line("aggregates recomputed after restart")
    return {
        "serving_s": round(serving_s, 2),
        "ready_s": round(ready_s, 2),
        "rebuild_s": line("budget counters rebuilt; writing the ledger").get("seconds"),
        "peak_rss_mib_at_ready": at_ready["VmHWM"],
        "peak_rss_mib_observed": later["VmHWM"],
        "rss_mib_at_end": later["VmRSS"],
        # the whole tree (collector, decoder and build workers), sampled every 0.1 s: memsample.py
        "tree_peak_rss_mib_at_ready": tree_at_ready[0],
        "tree_peak_pss_mib_at_ready": tree_at_ready[1],
        "tree_processes_at_ready": tree_at_ready[2].processes,
        "tree_peak_rss_mib_observed": memory.peak_rss_mib,
        "tree_peak_pss_mib_observed": memory.peak_pss_mib,
        "tree_processes_observed": memory.figures()["tree_processes"],
        "observed_s": round(samples[-1][0] if samples else ready_s, 1),
        "rss_mib_samples": samples[::10],
        "dedup_warm_keys": warm.get("dedup_warm_keys"),
        "dedup_warm_s": warm.get("seconds"),
        "recompute_s": recovered.get("seconds"),
        "startup_s_logged": line("collector started").get("startup_s"),
        "cpu_s_at_ready": cpu_at_ready,
        "cpu_s_observed": cpu_at_end,
    }


def _slices(data_dir: Path, slices: int, rows: int) -> dict[str, Any]:
    """The first `slices` slices of the recovery without a watermark, run in this process."""
    store = Store.open(data_dir=data_dir)
    try:
        _, _, found = store.query("SELECT min(ingested_at) FROM llm_calls")
        since = found[0][0] - timedelta(microseconds=1)
        wall, cpu = [], []
        for _ in range(slices):
            started, cpu_started = time.perf_counter(), time.process_time()
            store.refresh_aggregates(since=since, slices=1, hourly=False)
            wall.append(round(time.perf_counter() - started, 2))
            cpu.append(round(time.process_time() - cpu_started, 2))
            print(f"slice: {wall[-1]} s, {cpu[-1]} CPU s", flush=True)
        per_slice = store.recover_rows
    finally:
        store.close()
    total = rows / per_slice
    return {
        "rows_per_slice": per_slice,
        "slice_s": wall,
        "slice_cpu_s": cpu,
        "projected_recovery_s": round(statistics.median(wall) * total),
        "projected_recovery_cpu_s": round(statistics.median(cpu) * total),
    }


def main() -> dict[str, Any]:
    """Build the store, restart the collector in each case, write the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--max-keys", type=int, default=1_000_000)
    ap.add_argument("--observe", type=float, default=120.0, help="seconds to sample RSS after ready")
    ap.add_argument("--cases", default="clean,unclean,no_watermark", help="comma-separated cases to run")
    ap.add_argument("--no-watermark", action="store_true", help="run the no_watermark case alone")
    ap.add_argument("--slices", type=int, default=0, help="time the first N recovery slices in-process")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument(
        "--store",
        type=Path,
        help="keep the built store in this directory and reuse it when it is there (its rows were "
        "ingested when it was built: reuse it within the hour, so that they are still recent)",
    )
    args = ap.parse_args()
    cases = ["no_watermark"] if args.no_watermark else [c for c in args.cases.split(",") if c]
    load_at_start = os.getloadavg()
    results: dict[str, Any] = {}
    build_s: float | None = None
    with tempfile.TemporaryDirectory(prefix="tb-restart-") as tmp:
        data_dir = args.store or Path(tmp) / "store"
        if not (data_dir / "built").exists():
            store = Store.open(data_dir=data_dir)
            store.migrate()
            build_s = build_ledger(store, args.rows, days=0.99, ingested="ts")
            store.close()
            (data_dir / "built").write_text(str(args.rows), encoding="ascii")
        if args.slices:
            results["no_watermark_slices"] = _slices(data_dir, args.slices, args.rows)
            print(results, flush=True)
        now = datetime.now(UTC)
        watermarks = {
            "clean": now, "unclean": now - timedelta(minutes=5), "no_watermark": None, "budgets": now
        }  # fmt: skip
        for case in cases:
            rules = RULES if case == "budgets" else {}
            results[case] = _case(data_dir, watermarks[case], args.max_keys, args.observe, rules)
            print(results, flush=True)
    doc = {
        "command": (
            f"python bench/restart.py --rows {args.rows} --max-keys {args.max_keys}"
            f" --observe {args.observe:g} --cases {','.join(cases)} --slices {args.slices}"
        ),
        "load_avg_at_start": [round(x, 2) for x in load_at_start],
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows_ingested_last_24h": args.rows,
        "dedup_max_keys": args.max_keys,
        "build_s": round(build_s, 1) if build_s is not None else None,
        "cases": results,
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
