"""Shared machinery of the fault-injection scripts and the sustained-load benchmark (not a benchmark).

* `Load`: sender threads that export unique chat spans (100 input + 50 output tokens of gpt-4o, i.e.
  exactly 0.00075 USD each) to a real collector process over OTLP/HTTP protobuf and OTLP/gRPC, at a
  target rate. A request that fails (connection refused, timeout, 429, 503) is retried with the same
  body until it is acknowledged or the run ends, exactly as an OTLP exporter does; so re-deliveries
  happen naturally around every fault. Optionally, acknowledged batches are sent again on purpose
  (``resend_every``). Every acknowledged span ID is recorded.
* `FaultyCollector`: `tests.collector.collector_process.CollectorProcess` (the real
  ``python -m tokenbook collector`` child) with storage faults injectable from outside through a
  control file (see ``inject/sitecustomize.py``): ``up``, ``down`` (every insert fails as a dead
  server would), ``slow <seconds>`` (every insert holds the store that long).
* `verify`: after a clean stop, a child process opens the store and checks, per acknowledged span,
  that it is in the ledger exactly once (``llm_calls FINAL``), that no row exists that was not sent,
  and that the totals a user sees (``v_calls``, ``v_context_costs``, ``v_cost_hourly``) are exact.
* `replay_after_stop`: starts the collector again on the same data, so that it replays what its log
  still held at the stop, and stops it once the log is empty: what `verify` then misses is lost.
* `ReadyzProbe`: ``GET /readyz`` every 0.2 s, with the latency of each answer.
* `writer_activity`: from the collector's once-a-second summary lines, the longest stretch during which
  rows waited in the log and none was inserted, and the largest backlog.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tests.collector.collector_process import CollectorProcess  # noqa: E402

CHAT_COST = Decimal("0.00075")  # gpt-4o: 100 input tokens at 2.50/M + 50 output tokens at 10/M
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_ids = itertools.count(1)
_ids_lock = threading.Lock()


def chat_request(tenant: str, n: int, *, distinct: bool = False) -> tuple[bytes, list[str]]:
    """An `ExportTraceServiceRequest` of `n` fresh chat spans, and their span IDs (hex). `distinct`:
    every span has its own ``user.id`` and context ID (a cardinality flood); else 97 contexts, no user."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "fault-load"
    spans = rs.scope_spans.add().spans
    with _ids_lock:
        first = next(_ids)
        for _ in range(n - 1):
            next(_ids)
    now = time.time_ns()
    ids = []
    for i in range(first, first + n):
        span_id = (i | (1 << 62)).to_bytes(8, "big")
        span = spans.add(
            trace_id=(os.getpid() << 64 | i).to_bytes(16, "big"),
            span_id=span_id,
            name="chat gpt-4o",
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1_000_000,
        )
        for key, value in (
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o"),
            ("tenant.id", tenant),
            ("tokenbook.context.id", f"ctx-{i if distinct else i % 97}"),
            *((("user.id", f"user-{i}"),) if distinct else ()),
        ):
            span.attributes.add(key=key).value.string_value = value
        span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 100
        span.attributes.add(key="gen_ai.usage.output_tokens").value.int_value = 50
        ids.append(span_id.hex())
    return request.SerializeToString(), ids


class FaultyCollector(CollectorProcess):
    """A real collector child whose storage can be made unavailable or slow from outside."""

    def __init__(self, data_dir: Path, **config: Any) -> None:
        super().__init__(data_dir, **config)
        self.control = data_dir.parent / f"{data_dir.name}-storage-fault"
        self.storage("up")

    def storage(self, state: str) -> None:
        """``up``, ``down`` or ``slow <seconds>``; read by the collector before every insert."""
        self.control.write_text(state, encoding="ascii")

    def start(self, timeout: float = 90.0, *, settled: bool = True) -> FaultyCollector:
        os.environ["TOKENBOOK_FAULT_CONTROL"] = str(self.control)
        inject = str(HERE / "inject")
        if inject not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [inject, os.environ.get("PYTHONPATH")]))
        super().start(timeout, settled=settled)
        return self

    def rss_mib(self) -> float | None:
        if self.proc is None:
            return None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="ascii")
        except OSError:
            return None
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return round(kib / 1024, 1)

    def drained(self) -> bool:
        try:
            return self.metric("spooled_bytes") == 0
        except (KeyError, OSError):
            return False


@dataclass
class LoadStats:
    sent_spans: int = 0  # unique spans attempted at least once
    acked_spans: int = 0
    requests: int = 0
    retries: int = 0
    resent_batches: int = 0  # acknowledged batches sent again on purpose
    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, acknowledged requests only


class Load:
    """Sender threads at `rate` spans/s in batches of `batch`; half HTTP, half gRPC."""

    def __init__(
        self,
        collector: CollectorProcess,
        *,
        tenant: str,
        rate: float,
        batch: int = 200,
        senders: int = 4,
        resend_every: int = 0,
        acked_file: Path,
        request: Callable[[str, int], tuple[bytes, list[str]]] | None = None,
    ) -> None:
        """`request(tenant, n)`: a body of `n` fresh spans and their span IDs (default `chat_request`)."""
        self.request = request or chat_request
        self.collector = collector
        self.tenant = tenant
        self.batch = batch
        self.interval = batch * senders / rate  # seconds between two batches of one sender
        self.senders = senders
        self.resend_every = resend_every
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            for i in range(senders)
        ]
        self._acked = acked_file.open("w", encoding="ascii")

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        for t in self._threads:
            t.join()
        self._acked.close()
        return self.stats

    def _count(self, status: str) -> None:
        with self._lock:
            self.stats.requests += 1
            self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1

    def _send_http(self, body: bytes) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.collector.http_port, timeout=30)
        try:
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            return f"http {response.status}"
        except OSError as exc:
            return f"http {type(exc).__name__}"
        finally:
            conn.close()

    def _send_grpc(self, body: bytes) -> str:
        try:
            with grpc.insecure_channel(self.collector.grpc_endpoint) as channel:
                channel.unary_unary(EXPORT)(body, timeout=30)
        except grpc.RpcError as exc:
            return f"grpc {exc.code().name}"
        return "grpc OK"

    def _deliver(self, body: bytes, send: Any) -> bool:
        """Send until acknowledged (True) or the run ends (False)."""
        attempt = 0
        while True:
            started = time.perf_counter()
            status = send(body)
            self._count(status)
            if status in ("http 200", "grpc OK"):
                with self._lock:
                    self.stats.latencies.append(time.perf_counter() - started)
                return True
            if self._stop.is_set():
                return False
            attempt += 1
            with self._lock:
                self.stats.retries += 1
            time.sleep(min(0.05 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))

    def _run(self, index: int) -> None:
        send = self._send_http if index % 2 == 0 else self._send_grpc
        next_at = time.monotonic()
        acked_batches: list[bytes] = []
        for n in itertools.count(1):
            if self._stop.is_set():
                return
            body, ids = self.request(self.tenant, self.batch)
            with self._lock:
                self.stats.sent_spans += len(ids)
            if self._deliver(body, send):
                with self._lock:
                    self.stats.acked_spans += len(ids)
                    self._acked.write("\n".join(ids) + "\n")
                acked_batches.append(body)
            if self.resend_every and n % self.resend_every == 0 and acked_batches:
                self._deliver(random.choice(acked_batches[-50:]), send)  # a duplicate, on purpose
                with self._lock:
                    self.stats.resent_batches += 1
            next_at += self.interval
            self._stop.wait(max(next_at - time.monotonic(), 0))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


_VERIFY = """
import json, sys
from decimal import Decimal
from tokenbook.collector.storage.store import Store
data_dir, tenant, acked_file, cost = sys.argv[1], sys.argv[2], sys.argv[3], Decimal(sys.argv[4])
acked = set(open(acked_file, encoding="ascii").read().split())
store = Store.open(data_dir=data_dir)
q = lambda sql, tail="": store.query(sql + " WHERE tenant_id = {t:String}" + tail, {"t": tenant})[2]
per_span = dict(q("SELECT span_id, count() FROM llm_calls FINAL", " GROUP BY span_id"))
raw_rows = q("SELECT count() FROM llm_calls")[0][0]
view_rows, view_cost = q("SELECT count(), sum(total_cost) FROM v_calls")[0]
ctx_calls, ctx_cost = q("SELECT sum(calls), sum(total_cost) FROM v_context_costs")[0]
hour_calls, hour_cost = q("SELECT sum(calls), sum(total_cost) FROM v_cost_hourly")[0]
store.close()
stored = len(per_span)
expected = stored * cost
print(json.dumps({
    "acknowledged": len(acked),
    "stored": stored,
    "stored_acknowledged": len(acked & per_span.keys()),
    "lost": len(acked - per_span.keys()),
    "doubled": sum(1 for n in per_span.values() if n > 1) + (view_rows - stored),
    "stored_unacknowledged": stored - len(acked & per_span.keys()),
    "raw_rows_before_dedup": raw_rows,
    "totals_exact": bool(view_cost == expected and ctx_calls == stored and ctx_cost == expected
                         and hour_calls == stored and hour_cost == expected),
    "total_cost": str(view_cost),
}))
"""


def verify(data_dir: Path, tenant: str, acked_file: Path) -> dict[str, Any]:
    """Exactness of the ledger for `tenant` (run after the collector stopped; see module docstring)."""
    out = subprocess.run(
        [sys.executable, "-c", _VERIFY, str(data_dir), tenant, str(acked_file), str(CHAT_COST)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def wait_caught_up(
    collector: CollectorProcess, tenant: str, acked: int, timeout: float = 120.0
) -> float | None:
    """Seconds until the ledger (``v_calls``) holds `acked` spans of `tenant`, or None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if (
                collector.scalar("SELECT count() FROM v_calls WHERE tenant_id = {t:String}", t=tenant)
                >= acked
            ):
                return round(time.monotonic() - started, 2)
        except (OSError, RuntimeError):
            pass
        time.sleep(0.1)
    return None


def drain_and_stop(collector: FaultyCollector, timeout: float = 120.0) -> int:
    """Storage up, wait until the write-ahead log is empty, SIGTERM; returns the exit code."""
    collector.storage("up")
    deadline = time.monotonic() + timeout
    while not collector.drained() and time.monotonic() < deadline:
        time.sleep(0.2)
    return collector.stop()


def stop_or_kill(collector: FaultyCollector, log_copy: str) -> tuple[int, float]:
    """`drain_and_stop`, or SIGKILL when the stop takes longer than its timeout; (exit code, seconds).
    The collector's log is copied to ``<tmp>/<log_copy>`` (the data directory is temporary)."""
    started = time.monotonic()
    try:
        code = drain_and_stop(collector)
    except subprocess.TimeoutExpired:
        collector.kill()
        code = -9
    (Path(tempfile.gettempdir()) / log_copy).write_bytes(collector.log_path.read_bytes())
    return code, round(time.monotonic() - started, 1)


def writer_activity(log_path: Path) -> dict[str, Any]:
    """The writer as the collector's summary lines (``telemetry.summary_interval`` 1 s) show it: the
    longest run of seconds with rows waiting in the log (``spooled_bytes`` > 0) and none inserted, and
    the largest ``spooled_bytes``."""
    longest = run = 0
    backlog = 0
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if doc.get("msg") != "collector summary":
            continue
        waiting = doc["spooled_bytes"] > 0
        backlog = max(backlog, doc["spooled_bytes"])
        run = run + 1 if waiting and doc["inserted_rows"] == 0 else 0
        longest = max(longest, run)
    return {"longest_insert_stall_s": longest, "max_log_backlog_bytes": backlog}


def replay_after_stop(collector: FaultyCollector, timeout: float = 300.0) -> dict[str, Any]:
    """Start `collector` again (same data, same ports): it replays the rows its log still holds. Wait
    until the log is empty, then stop it; returns the log left at the start and how long it took."""
    started = time.monotonic()
    collector.start()
    left = collector.metric("spooled_bytes")
    while not collector.drained() and time.monotonic() - started < timeout:
        time.sleep(0.2)
    replay_s = round(time.monotonic() - started, 1)
    code = collector.stop()
    return {"log_bytes_at_restart": int(left), "replay_s": replay_s, "restart_exit_code": code}


class ReadyzProbe(threading.Thread):
    """``GET /readyz`` every 0.2 s (10 s timeout each); `samples` are (time since start, latency s or
    None when it did not answer)."""

    def __init__(self, collector: CollectorProcess) -> None:
        super().__init__(name="readyz-probe", daemon=True)
        self.collector = collector
        self.samples: list[tuple[float, float | None]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", self.collector.admin_port, timeout=10)
            try:
                conn.request("GET", "/readyz")
                conn.getresponse().read()
                latency: float | None = time.monotonic() - started
            except (OSError, http.client.HTTPException):
                latency = None
            finally:
                conn.close()
            self.samples.append((round(started - self.t0, 2), latency))
            self.stop.wait(0.2)

    def summary(self, start: float = 0.0, end: float = float("inf")) -> dict[str, Any]:
        """Answers between `start` and `end` (seconds since the probe started): p50/p99/max in ms."""
        values = [v for t, v in self.samples if start <= t < end and v is not None]
        return {
            "probes": sum(1 for t, _ in self.samples if start <= t < end),
            "unanswered": sum(1 for t, v in self.samples if start <= t < end and v is None),
            "p50_ms": _ms(percentile(values, 0.5)),
            "p99_ms": _ms(percentile(values, 0.99)),
            "max_ms": _ms(max(values, default=None)),
        }


def report(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``bench/results/faults_<name>.json`` and print the figures that matter."""
    path = REPO / "bench" / "results" / f"faults_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    keys = ("sent", "acknowledged", "stored", "lost", "doubled", "totals_exact", "catch_up_s")
    print(f"{name}: " + "  ".join(f"{k}={result.get(k)}" for k in keys))
    return result


def scenario_result(stats: LoadStats, check: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The figures every fault script reports."""
    assert check["acknowledged"] == stats.acked_spans
    return {
        "sent": stats.sent_spans,
        "acknowledged": stats.acked_spans,
        "stored": check["stored"],
        "lost": check["lost"],
        "doubled": check["doubled"],
        "totals_exact": check["totals_exact"],
        "stored_unacknowledged": check["stored_unacknowledged"],
        "redelivered_rows_absorbed": check["raw_rows_before_dedup"] - check["stored"],
        "requests": stats.requests,
        "retries": stats.retries,
        "resent_batches": stats.resent_batches,
        "statuses": stats.statuses,
        "export_p50_ms": _ms(percentile(stats.latencies, 0.5)),
        "export_p99_ms": _ms(percentile(stats.latencies, 0.99)),
        **extra,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def moments(rng: random.Random, count: int, low: float, high: float) -> Iterator[float]:
    """`count` random waits in [low, high] seconds."""
    for _ in range(count):
        yield rng.uniform(low, high)
