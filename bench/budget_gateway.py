"""Gateway check latency: ``GET /v1/budgets?tenant=T&context=C`` on a real collector under load.

A collector child process (`python -m tokenbook collector`, embedded store, write-ahead log on) runs
with 3 quotas and 1 budget; 2,000 chat spans over 20 tenants and 200 contexts are sent first (OTLP/
HTTP) so that counters exist. Then `--clients` threads (each one keep-alive HTTP/1.1 connection, as
a gateway would hold) issue `--requests` GETs in total, each for a random tenant and context, and
every request's latency is recorded. Also measured: `BudgetEvaluator.status` in-process (the same
answer without HTTP).

Reported: p50 / p90 / p99 / max latency in ms and requests/s. Writes bench/results/budget_gateway.json.
Run: ``.venv/bin/python bench/budget_gateway.py [--requests 10000] [--clients 4]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT = HERE / "results" / "budget_gateway.json"
TENANTS = [f"tenant-{i:02d}" for i in range(20)]
CONTEXTS = 200
BUDGETS = {
    "quotas": [
        {
            "name": "daily",
            "window": "1d",
            "limit": {"tokens": 10_000_000, "cost": "100"},
            "enforcement": "hard",
        },
        {"name": "hourly", "window": "1h", "limit": {"tokens": 1_000_000}},
        {
            "name": "monthly",
            "window": "calendar_month",
            "timezone": "Europe/Paris",
            "limit": {"cost": "1000"},
        },
    ],
    "budgets": [{"name": "session", "limit": {"tokens": 100_000}, "enforcement": "hard"}],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _start_collector(tmp: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    import yaml

    http_port, admin_port = _free_port(), _free_port()
    config = tmp / "collector.yaml"
    config.write_text(yaml.safe_dump({"budgets": BUDGETS}), encoding="utf-8")
    log = (tmp / "collector.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenbook", "collector", "--config", str(config), "--data-dir",
         str(tmp / "data"), "--grpc", f"127.0.0.1:{_free_port()}", "--http", f"127.0.0.1:{http_port}",
         "--admin", f"127.0.0.1:{admin_port}"],
        stdout=log, stderr=log, cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1):
                return proc, http_port, admin_port
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"collector did not start; see {tmp / 'collector.log'}")


def _send_spans(http_port: int, n: int) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(n):
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
            "tenant.id": TENANTS[i % len(TENANTS)],
            "tokenbook.context.id": f"ctx-{i % CONTEXTS}",
        }
        with tracer.start_as_current_span("chat gpt-4o", attributes=attributes):
            pass
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
    spans = list(memory.get_finished_spans())
    for start in range(0, len(spans), 500):
        exporter.export(spans[start : start + 500])
    exporter.shutdown()


def _client(admin_port: int, n: int, seed: int, out: list[float], errors: list[str]) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
    for _ in range(n):
        tenant = TENANTS[rng.randrange(len(TENANTS))]
        path = f"/v1/budgets?tenant={tenant}&context=ctx-{rng.randrange(CONTEXTS)}"
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        out.append(time.perf_counter() - started)
        if response.status != 200 or b'"allowed"' not in body:
            errors.append(f"{response.status} {body[:200]!r}")
    conn.close()


def _in_process(requests: int) -> dict[str, float]:
    from tokenbook.collector.budgets import BudgetEvaluator, parse_budgets
    from tokenbook.collector.budgets.events import BudgetEvent

    config, problems = parse_budgets(BUDGETS)
    assert not problems, problems
    events: list[BudgetEvent] = []
    evaluator = BudgetEvaluator(config, publish=events.append)
    sys.path.insert(0, str(REPO))
    from tests.collector.budgets.budget_rows import call

    now = datetime.now(UTC)
    evaluator.observe(
        [call(now, f"{i:016x}", tenant=TENANTS[i % 20], context=f"ctx-{i % CONTEXTS}") for i in range(2000)]
    )
    rng = random.Random(1)
    queries = [
        {"tenant": TENANTS[rng.randrange(20)], "context": f"ctx-{rng.randrange(CONTEXTS)}"}
        for _ in range(requests)
    ]
    started = time.perf_counter()
    for q in queries:
        evaluator.status(q)
    per_call = (time.perf_counter() - started) / requests
    return {"status_us": round(per_call * 1e6, 2), "status_per_s": round(1 / per_call)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory(prefix="tokenbook-bench-budgets-") as tmp:
        proc, http_port, admin_port = _start_collector(Path(tmp))
        try:
            _send_spans(http_port, 2000)
            latencies: list[float] = []
            errors: list[str] = []
            per_client = args.requests // args.clients
            threads = [
                threading.Thread(target=_client, args=(admin_port, per_client, k, latencies, errors))
                for k in range(args.clients)
            ]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    ms = sorted(v * 1000 for v in latencies)
    result: dict[str, Any] = {
        "requests": len(ms),
        "clients": args.clients,
        "p50_ms": round(_percentile(ms, 0.50), 3),
        "p90_ms": round(_percentile(ms, 0.90), 3),
        "p99_ms": round(_percentile(ms, 0.99), 3),
        "max_ms": round(ms[-1], 3),
        "requests_per_s": round(len(ms) / elapsed),
        **_in_process(args.requests),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"GET /v1/budgets over {result['requests']:,} requests, {args.clients} keep-alive clients")
    print("  " + "   ".join(f"{k} {result[f'{k}_ms']} ms" for k in ("p50", "p90", "p99", "max")))
    print(f"  {result['requests_per_s']:,} requests/s; in-process status(): {result['status_us']} µs")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
