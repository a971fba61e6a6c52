"""Collector CPU under a light steady load: what a collector beside a small application costs.

An application that makes a few model calls a second sends a small export request every second or so.
Each request becomes an insert, and each refresh of the aggregates costs the engine's planning of its
statements however few rows it covers, so at such a load the collector's CPU is set by how often it
inserts and refreshes (``storage.batch.max_delay``, ``storage.refresh.interval``,
``storage.refresh.hourly_interval``), not by the spans.

For each configuration (the built-in defaults, or each ``--config NAME=FILE``) a collector process
(`python -m tokenbook collector`, embedded store, write-ahead log on) receives ``--rate`` requests a
second, each one agent run of the throughput benchmark's spans (`collector_throughput.agent_run`: an
agent wrapper over chat calls with usage and a tool call), encoded by the official exporter's encoder
and sent with the generated gRPC stub, for ``--seconds``; then nothing for ``--idle`` seconds. The
collectors run one after the other, ``--rounds`` times, alternating. Reported per configuration (median
over the rounds): the CPU of all its processes in percent of one core, under the load and idle, split
between the collector's interpreter threads (receiving, logging, the writer, the refresh's planning),
the engine's own threads (executing inserts and refreshes, merges) and the child processes (decoders,
row-building workers); and whether every span's row arrived.

Run: ``.venv/bin/python bench/light_load.py [--rate 1] [--seconds 30] [--idle 10] [--rounds 2]
[--config NAME=FILE ...]``; the figures in the docs: ``--config defaults= --config
refresh_5s=bench/configs/refresh_5s.yaml --config light_load=bench/configs/light_load.yaml``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.collector_throughput import (  # noqa: E402 - after the path set-up
    SPANS_PER_RUN,
    BenchCollector,
    _admin_scalar,
    _build_spans,
    _children,
    _cpu_seconds,
    _role,
    add_config_option,
    stat_cpu_seconds,
)
from bench.result_file import write_result  # noqa: E402

RESULT = HERE / "results" / "light_load.json"


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads: the interpreter's (``python``) and the engine's (the rest)."""
    out = {"interpreter": 0.0, "engine": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds = stat_cpu_seconds(task / "stat")
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        out["interpreter" if name == "python" else "engine"] += seconds
    return out


def _sample(pid: int) -> dict[str, float]:
    """CPU seconds so far: the collector's threads by kind, and its child processes by role."""
    got = _threads(pid)
    for child in _children(pid):
        role = _role(child)
        got[role] = got.get(role, 0.0) + _cpu_seconds(child)
    return got


def _percent(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    parts = {k: 100 * (after.get(k, 0.0) - before.get(k, 0.0)) / seconds for k in after}
    return {"all": round(sum(parts.values()), 1), **{k: round(v, 1) for k, v in sorted(parts.items())}}


def _bodies(count: int, seed: int) -> list[Any]:
    """`count` export requests of one agent run each."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = _build_spans(count, seed)
    return [encode_spans(spans[i : i + SPANS_PER_RUN]) for i in range(0, len(spans), SPANS_PER_RUN)]


def one_run(
    name: str, config: Path | None, folder: Path, rate: float, seconds: float, idle: float
) -> dict[str, Any]:
    """One collector of one configuration under the light load, then idle."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    collector = BenchCollector(folder, name, config)
    try:
        collector.wait_ready()
        channel = grpc.insecure_channel(collector.endpoint)
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        requests = max(int(rate * seconds), 1)
        bodies = _bodies(requests + 3, seed=int(time.time()))
        for body in bodies[:3]:  # warm: the first request of each path, off the clock
            stub.Export(body, timeout=60)
        time.sleep(2)
        before, started = _sample(collector.pid), time.monotonic()
        for i, body in enumerate(bodies[3:]):
            time.sleep(max(started + i / rate - time.monotonic(), 0.0))
            stub.Export(body, timeout=60)
        time.sleep(max(started + requests / rate - time.monotonic(), 0.0))
        loaded = _sample(collector.pid)
        load_s = time.monotonic() - started
        time.sleep(idle)
        idle_sample, idle_s = _sample(collector.pid), time.monotonic() - started - load_s
        rows = _admin_scalar(
            collector.admin, "SELECT (SELECT count() FROM llm_calls) + (SELECT count() FROM context_steps)"
        )
        channel.close()
        return {
            "requests": requests,
            "spans_sent": len(bodies) * SPANS_PER_RUN,  # the warm-up's included
            "rows_visible": int(rows),  # calls and steps: one row per span
            "load_cpu_percent": _percent(before, loaded, load_s),
            "idle_cpu_percent": _percent(loaded, idle_sample, idle_s),
        }
    finally:
        collector.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1.0, help="export requests per second (default 1)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of load per run (default 30)")
    parser.add_argument(
        "--idle", type=float, default=10.0, help="seconds without requests after (default 10)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each configuration (default 2)")
    add_config_option(parser, "the defaults alone")
    parser.add_argument("--out", type=Path, default=RESULT, help=f"result file (default {RESULT})")
    args = parser.parse_args(argv)
    configs: list[tuple[str, Path | None]] = list(args.config) or [("defaults", None)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in configs}
    with tempfile.TemporaryDirectory(prefix="tokenbook-light-") as tmp:
        for r in range(args.rounds):
            for name, config in configs:
                folder = Path(tmp) / f"{name}-{r}"
                folder.mkdir()
                got = one_run(name, config, folder, args.rate, args.seconds, args.idle)
                runs[name].append(got)
                print(
                    f"round {r + 1}/{args.rounds} {name}: {got['load_cpu_percent']['all']}% of a core under "
                    f"load, {got['idle_cpu_percent']['all']}% idle, {got['rows_visible']} rows",
                    flush=True,
                )
    summary = {
        name: {
            "load_cpu_percent": {
                k: round(median(g["load_cpu_percent"].get(k, 0.0) for g in got), 1)
                for k in got[0]["load_cpu_percent"]
            },
            "idle_cpu_percent": round(median(g["idle_cpu_percent"]["all"] for g in got), 1),
            "every_row_visible": all(g["rows_visible"] == g["spans_sent"] for g in got),
        }
        for name, got in runs.items()
    }
    options = "".join(f" --config {name}={config or ''}" for name, config in args.config)
    report = {
        "command": f".venv/bin/python bench/light_load.py --rate {args.rate:g} --seconds {args.seconds:g} "
        f"--idle {args.idle:g} --rounds {args.rounds}{options}",
        "spans_per_request": SPANS_PER_RUN,
        "summary": summary,
        "runs": runs,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    write_result(args.out, report, summary)
    return report


if __name__ == "__main__":
    main()
